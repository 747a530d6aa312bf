//! PURE: what to do about one alarm, given the rules, the instance and the time.
//!
//! `decide` reads no clock, touches no network and no disk: the daemon and `explain`
//! call the same function, so what `explain` prints is what the daemon will do.

use std::cmp::Ordering;
use std::fmt;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::alarm::Alarm;
use crate::rules::InstanceNames;
use crate::rules::{Action, Rule, RuleSet, Selector, Threshold};

/// What one instance looks like at decision time.
#[derive(Debug, Clone, Copy)]
pub struct InstanceView<'a> {
    /// The names selectors match against: integer id, UUID, name (each when known).
    pub names: InstanceNames<'a>,
    /// The plan the instance is on now.
    pub plan: &'a str,
    /// When its last **upward** plan change finished (completed, failed, timed out or
    /// refused): a step down never delays a step up.
    pub last_change_finished: Option<Timestamp>,
    /// The instance's extra disk now, in GB (0 when it has none; `disk_sizes` rules grow it).
    pub disk: u32,
    /// When its last disk change finished: the disk rules' cooldown counts from it.
    pub last_disk_change_finished: Option<Timestamp>,
}

/// Plan prices, when a catalogue is known (the daemon has one; `explain` does not).
pub trait PlanPrices {
    fn price(&self, plan: &str) -> Option<f64>;
}

/// The outcome of a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Change the plan.
    Change(PlanChange),
    /// Do nothing, and say why.
    Skip(Skip),
}

/// A change to make: of the plan, or (`kind` disk) of the extra disk, whose `from` and `to`
/// are then sizes in GB written as numbers (`"0"`, `"25"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanChange {
    pub from: String,
    pub to: String,
    /// The rule that decided it (`scale_down` for a step down).
    pub rule: String,
    /// How long the instance cools down once this change has finished (an up's rules'
    /// cooldown; a step down holds `after_down` instead).
    #[serde(skip)]
    pub cooldown: Duration,
    pub direction: Direction,
    #[serde(skip)]
    pub kind: ChangeKind,
}

/// What a change changes: the plan, or the extra disk (a `disk_sizes` rule; always `up`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    #[default]
    Plan,
    Disk,
}

impl ChangeKind {
    /// `plan` or `disk`, as `/status`, the store and history write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plan => "plan",
            Self::Disk => "disk",
        }
    }

    /// Whether it is `plan` (for serde's `skip_serializing_if`).
    pub fn is_plan(&self) -> bool {
        *self == Self::Plan
    }

    /// From `plan` or `disk`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "plan" => Some(Self::Plan),
            "disk" => Some(Self::Disk),
            _ => None,
        }
    }
}

impl PlanChange {
    /// `plan bunny-1 -> hare-1` or `extra disk 0 -> 25 GB`: what the change does, for
    /// logs and details.
    pub fn describe(&self) -> String {
        describe_move(self.kind, &self.from, &self.to)
    }
}

/// `plan bunny-1 -> hare-1` or `extra disk 0 -> 25 GB`.
pub fn describe_move(kind: ChangeKind, from: &str, to: &str) -> String {
    match kind {
        ChangeKind::Plan => format!("plan {from} -> {to}"),
        ChangeKind::Disk => format!("extra disk {from} -> {to} GB"),
    }
}

/// Which way a plan change goes: `up` (a rule or a schedule raised the plan) or `down` (a
/// step down after a spike). The up rules' cooldown counts from upward changes only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Up,
    Down,
}

impl Direction {
    /// `up` or `down`, as `/status`, the store, logs and metrics write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
        }
    }
}

/// Which directions a freeze or a pause holds (`directions = ["up", "down"]`,
/// `"direction": "both"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Directions {
    pub up: bool,
    pub down: bool,
}

impl Directions {
    pub const BOTH: Self = Self {
        up: true,
        down: true,
    };

    /// Whether a change in `direction` is held.
    pub fn holds(self, direction: Direction) -> bool {
        match direction {
            Direction::Up => self.up,
            Direction::Down => self.down,
        }
    }

    /// `up`, `down` or `both`, as `/status` and the pause API write it.
    pub fn as_str(self) -> &'static str {
        match (self.up, self.down) {
            (true, true) => "both",
            (true, false) => "up",
            (false, true) => "down",
            (false, false) => "none",
        }
    }

    /// From `up`, `down` or `both`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "up" => Some(Self {
                up: true,
                down: false,
            }),
            "down" => Some(Self {
                up: false,
                down: true,
            }),
            "both" => Some(Self::BOTH),
            _ => None,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decision not to act.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    pub reason: Reason,
    /// One human sentence.
    pub detail: String,
    /// The rule the reason comes from, when one does.
    pub rule: Option<String>,
}

/// Why nothing is done. The codes are part of the contract and keep their meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    // Ordered as in the contract: when no rule acts, the one that got furthest speaks.
    NoMatchingRule,
    InstanceNotSelected,
    BelowThreshold,
    NotOnLadder,
    TopOfLadder,
    Cooldown,
    /// A resolve notification (checked first).
    Resolved,
    /// Runtime only: a change for the instance is in flight.
    ChangeInFlight,
    /// Runtime only: the alarm's instance is unknown.
    InstanceUnknown,
    /// Runtime only: the catalogue forbids the move.
    MoveNotAllowed,
    /// Runtime only (an extension): the instance's current plan could not be read.
    PlanUnknown,
    /// Runtime only (an extension): an alarm found undecided at a start, accepted too long
    /// ago to say anything about the load now.
    Stale,
    /// A guardrail: a pause set through the admin API holds the change.
    Paused,
    /// A guardrail: a `[[freeze]]` holds the change.
    Frozen,
    /// A guardrail: `[limits] max_changes` would be exceeded.
    MaxChanges,
    /// A guardrail: `[limits] max_monthly_price` would be exceeded (or cannot be checked).
    Budget,
}

impl Reason {
    /// The contract's code.
    pub fn code(self) -> &'static str {
        match self {
            Self::NoMatchingRule => "no_matching_rule",
            Self::InstanceNotSelected => "instance_not_selected",
            Self::BelowThreshold => "below_threshold",
            Self::NotOnLadder => "not_on_ladder",
            Self::TopOfLadder => "top_of_ladder",
            Self::Cooldown => "cooldown",
            Self::Resolved => "resolved",
            Self::ChangeInFlight => "change_in_flight",
            Self::InstanceUnknown => "instance_unknown",
            Self::MoveNotAllowed => "move_not_allowed",
            Self::PlanUnknown => "plan_unknown",
            Self::Stale => "stale",
            Self::Paused => "paused",
            Self::Frozen => "frozen",
            Self::MaxChanges => "max_changes",
            Self::Budget => "budget",
        }
    }
}

impl From<crate::guard::Guardrail> for Reason {
    fn from(guardrail: crate::guard::Guardrail) -> Self {
        use crate::guard::Guardrail;
        match guardrail {
            Guardrail::Paused => Self::Paused,
            Guardrail::Frozen => Self::Frozen,
            Guardrail::MaxChanges => Self::MaxChanges,
            Guardrail::Budget => Self::Budget,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// How far one rule got with one alarm.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleOutcome {
    NotSelected,
    /// The threshold does not hold (`None`: the alarm carries no value).
    BelowThreshold(Option<f64>),
    NotOnLadder,
    /// The plan is at or above `ceiling`, the rule's `max_plan` or the ladder's top.
    TopOfLadder {
        ladder: String,
        ceiling: String,
        is_top: bool,
    },
    /// The rule would move the instance to this plan.
    Target(String),
    /// A `disk_sizes` rule would grow the extra disk to this size (GB).
    DiskTarget(u32),
    /// A `disk_sizes` rule: the extra disk is at (or above) its largest size.
    DiskAtLargest {
        largest: u32,
    },
}

impl RuleOutcome {
    fn reason(&self) -> Reason {
        match self {
            Self::NotSelected => Reason::InstanceNotSelected,
            Self::BelowThreshold(_) => Reason::BelowThreshold,
            Self::NotOnLadder => Reason::NotOnLadder,
            Self::TopOfLadder { .. } | Self::DiskAtLargest { .. } => Reason::TopOfLadder,
            // Never ranked: a target ends the search before reasons are compared.
            Self::Target(_) | Self::DiskTarget(_) => Reason::Cooldown,
        }
    }
}

/// Decides what to do about `alarm` for `instance` at `now`.
pub fn decide(
    rules: &RuleSet,
    alarm: &Alarm,
    instance: &InstanceView<'_>,
    now: Timestamp,
    prices: Option<&dyn PlanPrices>,
) -> Decision {
    if alarm.resolved {
        return skip(
            Reason::Resolved,
            None,
            format!(
                "the {} alarm is a resolve notification: recorded, never acted on",
                alarm.kind
            ),
        );
    }
    let Some(index) = rules.by_type.get(&alarm.kind) else {
        return skip(
            Reason::NoMatchingRule,
            None,
            format!("no rule handles {:?} alarms", alarm.kind),
        );
    };
    // Only rules that can move this plan are looked at first: with thousands of rules a
    // decision costs what the few relevant ones cost.
    let mut furthest: Option<(Reason, usize, RuleOutcome)> = None;
    // The best plan target and the best disk size, each the highest of its kind (a plan
    // and a size cannot be compared); each then meets its own cooldown.
    let mut winners: [Option<(usize, RuleOutcome)>; 2] = [None, None];
    let on_plan = index
        .actionable
        .get(instance.plan)
        .map_or(&[][..], Vec::as_slice);
    // Disk rules act whatever the plan; merged in file order, so that ties go to the rule
    // listed first.
    let candidates: std::borrow::Cow<'_, [usize]> = if index.disk.is_empty() {
        on_plan.into()
    } else {
        let mut merged = [on_plan, &index.disk].concat();
        merged.sort_unstable();
        merged.into()
    };
    for &i in candidates.iter() {
        match evaluate(rules, &rules.rules[i], alarm, instance) {
            target @ (RuleOutcome::Target(_) | RuleOutcome::DiskTarget(_)) => {
                let slot = &mut winners[usize::from(matches!(target, RuleOutcome::DiskTarget(_)))];
                let better = match slot {
                    None => true,
                    Some((_, best)) => {
                        compare_targets(rules, prices, &target, best) == Some(Ordering::Greater)
                    }
                };
                if better {
                    *slot = Some((i, target));
                }
            }
            outcome => note(&mut furthest, i, outcome),
        }
    }
    // The winner of the rule listed first acts unless it is cooling down; then the other
    // kind's, under its own cooldown. Both cooling down: the first one's `cooldown`. (Within
    // a kind there is no fallback to a lesser rule.)
    let mut winners: Vec<(usize, RuleOutcome)> = winners.into_iter().flatten().collect();
    winners.sort_unstable_by_key(|(i, _)| *i);
    let mut cooling = None;
    for (i, target) in winners {
        match change_or_cooldown(rules, &rules.rules[i], instance, target, now) {
            change @ Decision::Change(_) => return change,
            skip => {
                cooling.get_or_insert(skip);
            }
        }
    }
    if let Some(skip) = cooling {
        return skip;
    }
    for &i in index.capped.get(instance.plan).into_iter().flatten() {
        note(
            &mut furthest,
            i,
            evaluate(rules, &rules.rules[i], alarm, instance),
        );
    }
    if furthest
        .as_ref()
        .is_none_or(|(reason, ..)| *reason < Reason::NotOnLadder)
    {
        // Every other rule of the type does not know this plan: the furthest it can get
        // is `not_on_ladder`, so the scan stops at the first one that gets there.
        for &i in &index.all {
            let outcome = evaluate(rules, &rules.rules[i], alarm, instance);
            let reached = outcome.reason() >= Reason::NotOnLadder;
            note(&mut furthest, i, outcome);
            if reached {
                break;
            }
        }
    }
    let (_, i, outcome) = furthest.expect("a type index holds at least one rule");
    explain_outcome(rules, &rules.rules[i], alarm, instance, &outcome)
}

/// Keeps the outcome that got furthest; on a tie, the rule listed first.
fn note(furthest: &mut Option<(Reason, usize, RuleOutcome)>, i: usize, outcome: RuleOutcome) {
    let reason = outcome.reason();
    let replace = match furthest {
        None => true,
        Some((best, best_i, _)) => reason > *best || (reason == *best && i < *best_i),
    };
    if replace {
        *furthest = Some((reason, i, outcome));
    }
}

/// How far `rule` gets with `alarm` on `instance` (ignoring cooldowns).
pub fn evaluate(
    rules: &RuleSet,
    rule: &Rule,
    alarm: &Alarm,
    instance: &InstanceView<'_>,
) -> RuleOutcome {
    if !selected(&rule.selectors, &instance.names) {
        return RuleOutcome::NotSelected;
    }
    if let Some(threshold) = rule.threshold {
        match alarm.value {
            Some(value) if threshold.holds(value) => {}
            value => return RuleOutcome::BelowThreshold(value),
        }
    }
    match &rule.action {
        Action::Ladder { ladder, steps, cap } => {
            let ladder = &rules.ladders[*ladder];
            match ladder.rung(instance.plan) {
                None => RuleOutcome::NotOnLadder,
                Some(rung) if rung >= *cap => RuleOutcome::TopOfLadder {
                    ladder: ladder.name.clone(),
                    ceiling: ladder.plans[*cap].clone(),
                    is_top: *cap + 1 == ladder.plans.len(),
                },
                Some(rung) => RuleOutcome::Target(ladder.plans[(rung + steps).min(*cap)].clone()),
            }
        }
        Action::Targets(map) => match map.get(instance.plan) {
            Some(target) => RuleOutcome::Target(target.clone()),
            None => RuleOutcome::NotOnLadder,
        },
        Action::Disk(sizes) => match sizes.iter().find(|&&size| size > instance.disk) {
            Some(&size) => RuleOutcome::DiskTarget(size),
            None => RuleOutcome::DiskAtLargest {
                largest: sizes.last().copied().unwrap_or(0),
            },
        },
    }
}

/// Until when an instance on `plan` whose last change finished at `finished` is cooling
/// down for at least one rule that could change it from that plan: `finished` plus the
/// longest cooldown among those rules (selectors checked against `names`). After that no
/// rule is held back; before it, a rule with a shorter cooldown may already act. `None`
/// when that moment has passed or no rule could change the instance at all. What
/// `/status` shows as `cooldown_until`, computed with the rules in force.
pub fn cooling_down_until(
    rules: &RuleSet,
    plan: &str,
    names: &InstanceNames<'_>,
    finished: Timestamp,
    now: Timestamp,
) -> Option<Timestamp> {
    let rules_of_plan = rules
        .by_type
        .values()
        .filter_map(|index| index.actionable.get(plan))
        .flatten();
    cooling_until(rules, rules_of_plan, names, finished, now)
}

/// [`cooling_down_until`] for the disk rules: the instance's last disk change finished at
/// `finished`, plus the longest cooldown of the disk rules that select it.
pub fn disk_cooling_down_until(
    rules: &RuleSet,
    names: &InstanceNames<'_>,
    finished: Timestamp,
    now: Timestamp,
) -> Option<Timestamp> {
    let disk_rules = rules.by_type.values().flat_map(|index| &index.disk);
    cooling_until(rules, disk_rules, names, finished, now)
}

/// `finished` plus the longest cooldown of the rules `indices` that select `names`, if
/// still ahead of `now`.
fn cooling_until<'a>(
    rules: &RuleSet,
    indices: impl Iterator<Item = &'a usize>,
    names: &InstanceNames<'_>,
    finished: Timestamp,
    now: Timestamp,
) -> Option<Timestamp> {
    let longest = indices
        .map(|&i| &rules.rules[i])
        .filter(|rule| rule.selects(names))
        .map(|rule| rules.cooldown_of(rule))
        .max()?;
    Some(crate::clock::add(finished, longest)).filter(|until| *until > now)
}

fn selected(selectors: &[Selector], names: &InstanceNames<'_>) -> bool {
    crate::rules::any_picks(selectors, names)
}

/// Orders two rules' targets: plans as [`compare`] does, disk sizes by size; a plan and a
/// disk size cannot be compared.
fn compare_targets(
    rules: &RuleSet,
    prices: Option<&dyn PlanPrices>,
    a: &RuleOutcome,
    b: &RuleOutcome,
) -> Option<Ordering> {
    match (a, b) {
        (RuleOutcome::Target(a), RuleOutcome::Target(b)) => compare(rules, prices, a, b),
        (RuleOutcome::DiskTarget(a), RuleOutcome::DiskTarget(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

/// Orders two targets: by price when both are known, else by rung on a common ladder.
fn compare(rules: &RuleSet, prices: Option<&dyn PlanPrices>, a: &str, b: &str) -> Option<Ordering> {
    if let Some(prices) = prices
        && let (Some(pa), Some(pb)) = (prices.price(a), prices.price(b))
    {
        return pa.partial_cmp(&pb);
    }
    let (ra, rb) = rules.rungs_on_common_ladder(a, b)?;
    Some(ra.cmp(&rb))
}

fn change_or_cooldown(
    rules: &RuleSet,
    rule: &Rule,
    instance: &InstanceView<'_>,
    target: RuleOutcome,
    now: Timestamp,
) -> Decision {
    let cooldown = rules.cooldown_of(rule);
    let (kind, from, to, last_finished) = match target {
        RuleOutcome::DiskTarget(size) => (
            ChangeKind::Disk,
            instance.disk.to_string(),
            size.to_string(),
            instance.last_disk_change_finished,
        ),
        RuleOutcome::Target(plan) => (
            ChangeKind::Plan,
            instance.plan.to_owned(),
            plan,
            instance.last_change_finished,
        ),
        other => unreachable!("not a target: {other:?}"),
    };
    if let Some(finished) = last_finished {
        let until = crate::clock::add(finished, cooldown);
        if now < until {
            let what = match kind {
                ChangeKind::Plan => "change",
                ChangeKind::Disk => "disk change",
            };
            return skip(
                Reason::Cooldown,
                Some(rule),
                format!(
                    "rule {:?} would change {}, but the instance is cooling down until {until} \
                     (its last {what} finished at {finished}; cooldown {})",
                    rule.name,
                    describe_move(kind, &from, &to),
                    crate::duration::display(cooldown)
                ),
            );
        }
    }
    Decision::Change(PlanChange {
        from,
        to,
        rule: rule.name.clone(),
        cooldown,
        direction: Direction::Up,
        kind,
    })
}

fn explain_outcome(
    rules: &RuleSet,
    rule: &Rule,
    alarm: &Alarm,
    instance: &InstanceView<'_>,
    outcome: &RuleOutcome,
) -> Decision {
    let detail = describe(rules, rule, alarm, instance, outcome);
    skip(outcome.reason(), Some(rule), detail)
}

/// One sentence on how `rule` fared; shared by decisions and `explain`'s per-rule trace.
pub fn describe(
    rules: &RuleSet,
    rule: &Rule,
    alarm: &Alarm,
    instance: &InstanceView<'_>,
    outcome: &RuleOutcome,
) -> String {
    let name = &rule.name;
    let plan = instance.plan;
    match outcome {
        RuleOutcome::NotSelected => format!(
            "rule {name:?} handles {} alarms but its instances ({}) do not select {}",
            rule.alarm,
            rule.selectors
                .iter()
                .map(Selector::as_str)
                .collect::<Vec<_>>()
                .join(", "),
            instance_label(&instance.names)
        ),
        RuleOutcome::BelowThreshold(value) => {
            let wants = match rule.threshold {
                Some(Threshold::Above(x)) => format!("above {x}"),
                Some(Threshold::Below(x)) => format!("below {x}"),
                None => String::new(),
            };
            match value {
                Some(value) => format!(
                    "rule {name:?} needs {} {wants}; the alarm says {value}",
                    alarm.kind
                ),
                None => format!(
                    "rule {name:?} needs {} {wants}, and the alarm carries no value",
                    alarm.kind
                ),
            }
        }
        RuleOutcome::NotOnLadder => match &rule.action {
            Action::Ladder { ladder, .. } => format!(
                "plan {plan:?} is not on ladder {:?} of rule {name:?}",
                rules.ladders[*ladder].name
            ),
            Action::Targets(_) => format!("rule {name:?} has no target for plan {plan:?}"),
            Action::Disk(_) => format!(
                "rule {name:?} has no disk size above the extra disk of {} GB",
                instance.disk
            ),
        },
        RuleOutcome::TopOfLadder {
            ladder,
            is_top: true,
            ..
        } => {
            format!("plan {plan:?} is at the top of ladder {ladder:?} (rule {name:?})")
        }
        RuleOutcome::TopOfLadder { ceiling, .. } => {
            format!("plan {plan:?} is at or above max_plan {ceiling:?} of rule {name:?}")
        }
        RuleOutcome::Target(target) => format!("rule {name:?} would change {plan} -> {target}"),
        RuleOutcome::DiskTarget(size) => format!(
            "rule {name:?} would grow the extra disk {} -> {size} GB",
            instance.disk
        ),
        RuleOutcome::DiskAtLargest { largest } => format!(
            "the extra disk is {} GB, at or above {largest} GB, the largest of rule {name:?}'s disk_sizes",
            instance.disk
        ),
    }
}

fn instance_label(names: &InstanceNames<'_>) -> String {
    let parts: Vec<String> = [names.id, names.uuid, names.name]
        .into_iter()
        .flatten()
        .map(|n| format!("{n:?}"))
        .collect();
    if parts.is_empty() {
        "this instance".to_owned()
    } else {
        format!("instance {}", parts.join(" / "))
    }
}

fn skip(reason: Reason, rule: Option<&Rule>, detail: String) -> Decision {
    Decision::Skip(Skip {
        reason,
        detail,
        rule: rule.map(|r| r.name.clone()),
    })
}
