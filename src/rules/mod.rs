//! `rules.toml`: the validated, compiled rules the daemon and `explain` decide with.
//!
//! [`load`] turns a file into a [`RuleSet`] or into every problem the file has
//! ([`RuleError`]s with file, line, column and rule). A `RuleSet` is immutable and indexed
//! by alarm type and by current plan, so a decision looks only at the rules that can act.

mod alarms_load;
mod cron;
mod disk_load;
mod dst;
mod error;
mod guard;
mod guard_load;
mod hours;
mod hours_load;
mod load;
mod scale_down;
mod scale_down_load;
mod selector;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

pub use alarms_load::{AlarmSettings, DEFAULT_TIME_THRESHOLD};
pub use cron::CronExpr;
pub use dst::{DstMeeting, meetings as dst_meetings};
pub use error::{Location, RuleError, RulesFailure};
pub use guard::{
    Freeze, FreezeWhen, Limits, MAX_CHANGES_COUNT, MaxChanges, OpenWindow, Schedule, ScheduleEnd,
};
pub use hours::{DAY_NAMES, Hours};
pub use load::{load_file, parse};
pub use scale_down::ScaleDown;
pub use selector::{InstanceNames, Selector, any_picks};

/// The alarm types CloudAMQP sends (cloudamqp-api.md, "Alarms and webhook recipients").
pub const ALARM_TYPES: &[&str] = &[
    "cpu",
    "memory",
    "disk",
    "queue",
    "connection",
    "flow",
    "consumer",
    "netsplit",
    "server_unreachable",
    "notice",
    "ssh",
];

/// The cooldown when neither `[defaults]` nor the rule sets one.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(30 * 60);

/// A validated rules file, compiled for fast decisions.
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub(crate) source: Source,
    pub(crate) default_cooldown: Duration,
    pub(crate) ladders: Vec<Ladder>,
    pub(crate) rules: Vec<Rule>,
    pub(crate) by_type: HashMap<String, TypeIndex>,
    pub(crate) plan_mentions: Vec<PlanMention>,
    pub(crate) warnings: Vec<RuleError>,
    /// `[scale_down]`; `None`: the daemon never moves a plan down.
    pub(crate) scale_down: Option<ScaleDown>,
    /// `[limits]` (every field `None` when the file has none).
    pub(crate) limits: Limits,
    /// `[[freeze]]` windows, in file order.
    pub(crate) freezes: Vec<Freeze>,
    /// `[[schedules]]`, in file order (names unique).
    pub(crate) schedules: Vec<Schedule>,
    /// `[alarms.<type>]` sections, by alarm type (what `setup` configures).
    pub(crate) alarms: HashMap<String, AlarmSettings>,
}

/// Where a rule set came from.
#[derive(Debug, Clone)]
pub struct Source {
    /// The path as the user gave it.
    pub path: String,
    /// `sha256:<hex>` of the file's bytes.
    pub hash: String,
}

/// An ordered list of plans, smallest first.
#[derive(Debug, Clone)]
pub struct Ladder {
    pub name: String,
    pub plans: Vec<String>,
    rungs: HashMap<String, usize>,
}

impl Ladder {
    pub(crate) fn new(name: String, plans: Vec<String>) -> Self {
        let rungs = plans
            .iter()
            .enumerate()
            .map(|(rung, plan)| (plan.clone(), rung))
            .collect();
        Self { name, plans, rungs }
    }

    /// The position of `plan` on this ladder (0 = smallest).
    pub fn rung(&self, plan: &str) -> Option<usize> {
        self.rungs.get(plan).copied()
    }
}

/// One `[[rules]]` entry.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub alarm: String,
    pub threshold: Option<Threshold>,
    pub action: Action,
    /// The rule's own cooldown; `None` means the file's default.
    pub cooldown: Option<Duration>,
    /// Empty means every instance.
    pub selectors: Vec<Selector>,
}

impl Rule {
    /// Whether the rule's `instances` pick the instance with `names`.
    pub fn selects(&self, names: &InstanceNames<'_>) -> bool {
        any_picks(&self.selectors, names)
    }
}

/// When the alarm's value makes a rule match (strictly).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    Above(f64),
    Below(f64),
}

impl Threshold {
    /// Whether `value` passes the threshold.
    pub fn holds(self, value: f64) -> bool {
        match self {
            Self::Above(limit) => value > limit,
            Self::Below(limit) => value < limit,
        }
    }
}

/// What a rule does when it matches.
#[derive(Debug, Clone)]
pub enum Action {
    /// Climb `steps` rungs of ladder `ladder` (an index into the rule set's ladders),
    /// never past rung `cap` (the rule's `max_plan`, else the top).
    Ladder {
        ladder: usize,
        steps: usize,
        cap: usize,
    },
    /// Move from each listed plan to its target.
    Targets(HashMap<String, String>),
    /// Grow the instance's extra disk to the next of these sizes (GB, increasing, each one
    /// CloudAMQP offers): `disk_sizes`.
    Disk(Vec<u32>),
}

/// The extra disk sizes CloudAMQP offers, in GB (cloudamqp-api.md, "Disk resize"); every
/// instance starts at 0.
pub const DISK_SIZES: &[u32] = &[0, 25, 50, 100, 250, 500, 1000, 2000];

/// Rules of one alarm type, indexed by the plan an instance is on.
#[derive(Debug, Clone, Default)]
pub(crate) struct TypeIndex {
    /// Every rule of the type, in file order.
    pub all: Vec<usize>,
    /// Rules that can yield a change from this plan, in file order.
    pub actionable: HashMap<String, Vec<usize>>,
    /// Ladder rules on which this plan is at or above the cap, in file order.
    pub capped: HashMap<String, Vec<usize>>,
    /// `disk_sizes` rules, in file order: they act whatever the plan.
    pub disk: Vec<usize>,
}

/// A plan name written somewhere in the file (for `check --online`).
#[derive(Debug, Clone)]
pub struct PlanMention {
    pub plan: String,
    pub location: Location,
    /// What mentions it: `ladder "single"`, `rule "memory-high": max_plan`, …
    pub context: String,
}

impl RuleSet {
    /// Reads and validates a rules file.
    pub fn load(path: &Path) -> Result<Self, RulesFailure> {
        load_file(path)
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    pub fn default_cooldown(&self) -> Duration {
        self.default_cooldown
    }

    pub fn ladders(&self) -> &[Ladder] {
        &self.ladders
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Every plan name the file mentions, with where.
    pub fn plan_mentions(&self) -> &[PlanMention] {
        &self.plan_mentions
    }

    /// Things that are valid but probably not what the author meant.
    pub fn warnings(&self) -> &[RuleError] {
        &self.warnings
    }

    /// `[scale_down]`, when the file has one.
    pub fn scale_down(&self) -> Option<&ScaleDown> {
        self.scale_down.as_ref()
    }

    /// `[limits]`.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// `[[freeze]]` windows, in file order.
    pub fn freezes(&self) -> &[Freeze] {
        &self.freezes
    }

    /// `[[schedules]]`, in file order.
    pub fn schedules(&self) -> &[Schedule] {
        &self.schedules
    }

    /// `[alarms.<kind>]` as written (every field `None` when the file has no such section).
    pub fn alarm_settings(&self, kind: &str) -> AlarmSettings {
        self.alarms.get(kind).copied().unwrap_or_default()
    }

    /// Whether the daemon manages the instance with these names: a rule, `[scale_down]`
    /// or a schedule selects it (what `[limits] max_monthly_price` sums over).
    pub fn manages(&self, names: &InstanceNames<'_>) -> bool {
        self.rules.iter().any(|rule| rule.selects(names))
            || self.scale_down.as_ref().is_some_and(|s| s.selects(names))
            || self.schedules.iter().any(|s| s.selects(names))
    }

    /// The ladder that holds both plans, the first in file order.
    pub fn ladder_holding(&self, a: &str, b: &str) -> Option<&Ladder> {
        self.ladders
            .iter()
            .find(|ladder| ladder.rung(a).is_some() && ladder.rung(b).is_some())
    }

    /// The cooldown `rule` holds an instance to.
    pub fn cooldown_of(&self, rule: &Rule) -> Duration {
        rule.cooldown.unwrap_or(self.default_cooldown)
    }

    /// The rules of one alarm type, in file order.
    pub fn rules_for<'a>(&'a self, alarm_type: &str) -> impl Iterator<Item = &'a Rule> + 'a {
        self.by_type
            .get(alarm_type)
            .into_iter()
            .flat_map(|index| index.all.iter().map(|&i| &self.rules[i]))
    }

    /// The `disk_sizes` rules of one alarm type, in file order (looked up, not scanned).
    pub fn disk_rules_for<'a>(&'a self, alarm_type: &str) -> impl Iterator<Item = &'a Rule> + 'a {
        self.by_type
            .get(alarm_type)
            .into_iter()
            .flat_map(|index| index.disk.iter().map(|&i| &self.rules[i]))
    }

    /// The position of `plan` on a ladder that holds both plans, the first such ladder
    /// in file order: how targets are compared when no catalogue gives prices.
    pub fn rungs_on_common_ladder(&self, a: &str, b: &str) -> Option<(usize, usize)> {
        self.ladders
            .iter()
            .find_map(|ladder| Some((ladder.rung(a)?, ladder.rung(b)?)))
    }
}
