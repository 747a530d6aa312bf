//! PURE: whether to step an instance's plan down, given the rules, what the daemon knows of
//! the instance, the figures one look read, and the time.
//!
//! The sibling of [`crate::decide`]: it reads no clock, touches no network and no disk, so
//! `explain --down` and the daemon run the same code. A look goes through three stages, in
//! this order, and the first that refuses gives the reason:
//!
//! ```text
//! target ──▶ time gates ──▶ (the daemon reads the instance and its nodes) ──▶ evidence ──▶ window
//! at_floor    not_quiet                                                      not_ready       stabilizing
//! not selected too_soon                                                      metrics_unavailable
//!             outside_hours                                                  node_alarm, capacity_unknown, headroom
//! ```
//!
//! The first two cost no API call. The daemon never steps down on a guess: no metrics, no
//! known capacity or any alarm means no step.

mod evidence;
mod floor;
mod window;

use std::fmt;

use jiff::Timestamp;
use serde::Serialize;

use crate::cloudamqp::BrokerNode;
use crate::decide::{Direction, PlanChange};
use crate::rules::{InstanceNames, RuleSet, ScaleDown};

pub use evidence::{Projection, project};
pub use floor::{Floor, SetBy, Step, floor, step};
pub use window::Streak;

/// The rule name a step down is recorded under.
pub const RULE: &str = "scale_down";

/// Why a look did not step the plan down. The codes are part of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DownReason {
    /// `explain --down` only: the plan is at (or below) the floor; the daemon does not look.
    AtFloor,
    /// `explain --down` only: `[scale_down]` does not select the instance.
    InstanceNotSelected,
    /// No ladder leads from the plan toward the floor (an extension).
    NotOnLadder,
    NotQuiet,
    TooSoon,
    OutsideHours,
    NotReady,
    NodeAlarm,
    MetricsUnavailable,
    CapacityUnknown,
    Headroom,
    /// The look passed, but the window is not full yet.
    Stabilizing,
    /// CloudAMQP's catalogue forbids the move (the daemon checks it; an extension).
    MoveNotAllowed,
    /// A guardrail (Part 3): a pause set through the admin API.
    Paused,
    /// A guardrail: a `[[freeze]]` that holds downward changes.
    Frozen,
    /// A guardrail: `[limits] max_changes`.
    MaxChanges,
}

impl DownReason {
    /// The guardrail's reason, when a guardrail held the step down.
    pub fn guardrail(self) -> Option<crate::decide::Reason> {
        use crate::decide::Reason;
        match self {
            Self::Paused => Some(Reason::Paused),
            Self::Frozen => Some(Reason::Frozen),
            Self::MaxChanges => Some(Reason::MaxChanges),
            _ => None,
        }
    }

    /// The contract's code.
    pub fn code(self) -> &'static str {
        match self {
            Self::AtFloor => "at_floor",
            Self::InstanceNotSelected => "instance_not_selected",
            Self::NotOnLadder => "not_on_ladder",
            Self::NotQuiet => "not_quiet",
            Self::TooSoon => "too_soon",
            Self::OutsideHours => "outside_hours",
            Self::NotReady => "not_ready",
            Self::NodeAlarm => "node_alarm",
            Self::MetricsUnavailable => "metrics_unavailable",
            Self::CapacityUnknown => "capacity_unknown",
            Self::Headroom => "headroom",
            Self::Stabilizing => "stabilizing",
            Self::MoveNotAllowed => "move_not_allowed",
            Self::Paused => "paused",
            Self::Frozen => "frozen",
            Self::MaxChanges => "max_changes",
        }
    }

    /// Every code, for metrics and table tests.
    pub const ALL: &'static [DownReason] = &[
        Self::AtFloor,
        Self::InstanceNotSelected,
        Self::NotOnLadder,
        Self::NotQuiet,
        Self::TooSoon,
        Self::OutsideHours,
        Self::NotReady,
        Self::NodeAlarm,
        Self::MetricsUnavailable,
        Self::CapacityUnknown,
        Self::Headroom,
        Self::Stabilizing,
        Self::MoveNotAllowed,
        Self::Paused,
        Self::Frozen,
        Self::MaxChanges,
    ];
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// An upward change that completed for real since the instance's baseline was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpStep {
    pub from: String,
    pub to: String,
    /// The rule that made it.
    pub rule: String,
}

/// What the daemon knows of one instance when it looks.
#[derive(Debug, Clone, Copy)]
pub struct DownView<'a> {
    pub names: InstanceNames<'a>,
    /// The plan it is on.
    pub plan: &'a str,
    /// The plan before the daemon's first upward change (moved by changes it did not make);
    /// `None`: unknown, so nothing is the daemon's to take back.
    pub baseline: Option<&'a str>,
    /// When the daemon last received an alarm for it (not a resolve).
    pub last_alarm: Option<Timestamp>,
    /// When its last upward change finished (completed, failed, timed out, refused, dry run).
    pub last_up: Option<Timestamp>,
    /// When its last downward change finished.
    pub last_down: Option<Timestamp>,
    /// Upward changes since the baseline, oldest first.
    pub ups: &'a [UpStep],
}

/// What one look read: the instance, its nodes, and the smaller plan's known capacity.
#[derive(Debug, Clone, Copy)]
pub struct Figures<'a> {
    /// CloudAMQP's `ready` flag.
    pub ready: bool,
    /// The management API's nodes, or why there are none (a sentence).
    pub nodes: Result<&'a [BrokerNode], &'a str>,
    /// The per-node memory limit seen on this instance while it was on the smaller plan
    /// (`[scale_down] memory_limits` is the fallback).
    pub seen_limit: Option<u64>,
}

/// How a look ended when it made no change.
#[derive(Debug, Clone, PartialEq)]
pub struct LookVerdict {
    /// Whether the evidence held (a stabilizing look passed).
    pub passed: bool,
    pub reason: DownReason,
    /// One human sentence, with the figures.
    pub detail: String,
    /// Projected memory as a percentage of the smaller plan's limit, when projected.
    pub projected_memory_percent: Option<f64>,
}

impl LookVerdict {
    fn failed(reason: DownReason, detail: String) -> Self {
        Self {
            passed: false,
            reason,
            detail,
            projected_memory_percent: None,
        }
    }
}

/// The outcome of a look.
#[derive(Debug, Clone, PartialEq)]
pub enum DownDecision {
    /// Step down: `direction` is `down`, `rule` is `scale_down`, `cooldown` is `after_down`.
    Change {
        change: PlanChange,
        detail: String,
        projected_memory_percent: Option<f64>,
    },
    Skip(LookVerdict),
}

/// The section and the target of a look, or why the instance is not the daemon's to step
/// down (then the daemon does not look at all, and it costs nothing).
pub fn target<'r>(
    rules: &'r RuleSet,
    view: &DownView<'_>,
    now: Timestamp,
) -> Result<(&'r ScaleDown, Step), LookVerdict> {
    let Some(section) = rules.scale_down() else {
        return Err(LookVerdict::failed(
            DownReason::InstanceNotSelected,
            "the rules have no [scale_down]: plans are never moved down".into(),
        ));
    };
    if !section.selects(&view.names) {
        return Err(LookVerdict::failed(
            DownReason::InstanceNotSelected,
            format!(
                "[scale_down] instances ({}) do not select this instance",
                section
                    .selectors
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    floor::step(rules, section, view, now).map(|step| (section, step))
}

/// The time gates (`quiet_for`, `after_up`, `after_down`, `hours`): checked before any API
/// call. A look they refuse is still a look.
pub fn time_gates(
    section: &ScaleDown,
    view: &DownView<'_>,
    now: Timestamp,
) -> Result<(), LookVerdict> {
    let gates = Gates::of(section, view);
    if let Some((alarm, until)) = gates.quiet
        && now < until
    {
        return Err(LookVerdict::failed(
            DownReason::NotQuiet,
            format!(
                "the last alarm for the instance came at {alarm}; quiet_for {} asks for none until {until}",
                crate::duration::display(section.quiet_for)
            ),
        ));
    }
    for (what, key, wait, gate) in [
        ("upward", "after_up", section.after_up, gates.after_up),
        (
            "downward",
            "after_down",
            section.after_down,
            gates.after_down,
        ),
    ] {
        if let Some((finished, until)) = gate
            && now < until
        {
            return Err(LookVerdict::failed(
                DownReason::TooSoon,
                format!(
                    "the last {what} change finished at {finished}; {key} {} holds until {until}",
                    crate::duration::display(wait)
                ),
            ));
        }
    }
    if let Some(hours) = &section.hours
        && !hours.contains(now)
    {
        let next = hours
            .next_open(now)
            .map_or_else(|| "never".to_owned(), |t| t.to_string());
        return Err(LookVerdict::failed(
            DownReason::OutsideHours,
            format!(
                "steps down are made only in the hours {}; the next opens at {next}",
                hours.describe()
            ),
        ));
    }
    Ok(())
}

/// The guardrails a step down must pass (a pause, a freeze, `max_changes`; the budget only
/// refuses ups): checked after the time gates and, like them, before any API call. A look
/// they refuse is a failed look.
pub fn guardrails(
    rules: &RuleSet,
    id: u64,
    view: &DownView<'_>,
    step: &Step,
    figures: &crate::guard::GuardFigures<'_>,
    now: Timestamp,
) -> Result<(), LookVerdict> {
    let proposed = crate::guard::Proposed {
        instance_id: id,
        names: view.names,
        direction: Direction::Down,
        kind: crate::decide::ChangeKind::Plan,
        from: view.plan,
        to: &step.to,
    };
    match crate::guard::hold(rules, &proposed, figures, now) {
        None => Ok(()),
        Some(held) => Err(LookVerdict::failed(
            match held.guardrail {
                crate::guard::Guardrail::Paused => DownReason::Paused,
                crate::guard::Guardrail::Frozen => DownReason::Frozen,
                // The budget never refuses a change down; counted as max_changes otherwise.
                crate::guard::Guardrail::MaxChanges | crate::guard::Guardrail::Budget => {
                    DownReason::MaxChanges
                }
            },
            held.detail,
        )),
    }
}

/// The earliest time the four time gates allow, from `now` on.
pub fn eligible_at(section: &ScaleDown, view: &DownView<'_>, now: Timestamp) -> Option<Timestamp> {
    let gates = Gates::of(section, view);
    let earliest = [gates.quiet, gates.after_up, gates.after_down]
        .into_iter()
        .flatten()
        .map(|(_, until)| until)
        .fold(now, Timestamp::max);
    match &section.hours {
        Some(hours) => hours.next_open(earliest),
        None => Some(earliest),
    }
}

/// When each time gate opens, with the event it counts from.
struct Gates {
    quiet: Option<(Timestamp, Timestamp)>,
    after_up: Option<(Timestamp, Timestamp)>,
    after_down: Option<(Timestamp, Timestamp)>,
}

impl Gates {
    fn of(section: &ScaleDown, view: &DownView<'_>) -> Self {
        let gate = |at: Option<Timestamp>, wait| at.map(|at| (at, crate::clock::add(at, wait)));
        Self {
            quiet: gate(view.last_alarm, section.quiet_for),
            after_up: gate(view.last_up, section.after_up),
            after_down: gate(view.last_down, section.after_down),
        }
    }
}

/// Judges what a look read and whether the window is full. Returns the decision and the
/// streak of passing looks as it stands after this look (the daemon keeps it for the next).
pub fn judge(
    section: &ScaleDown,
    view: &DownView<'_>,
    step: &Step,
    figures: &Figures<'_>,
    streak: Streak,
    now: Timestamp,
) -> (DownDecision, Streak) {
    let verdict = evidence::weigh(section, step, figures);
    let streak = streak.after_look(now, verdict.passed, view.last_alarm, section.check_every);
    if !verdict.passed {
        return (DownDecision::Skip(verdict), streak);
    }
    if !streak.is_full(section.window, now) {
        let full_at = streak
            .full_at(section.window)
            .map_or_else(String::new, |at| {
                format!(" (at {at} if they go on passing)")
            });
        let verdict = LookVerdict {
            passed: true,
            reason: DownReason::Stabilizing,
            detail: format!(
                "{}; stabilizing: {} look{} passed since {}, a step down once they have for {}{full_at}",
                verdict.detail,
                streak.looks,
                if streak.looks == 1 { "" } else { "s" },
                streak.since.map_or_else(String::new, |t| t.to_string()),
                crate::duration::display(section.window),
            ),
            ..verdict
        };
        return (DownDecision::Skip(verdict), streak);
    }
    let change = PlanChange {
        from: view.plan.to_owned(),
        to: step.to.clone(),
        rule: RULE.to_owned(),
        cooldown: section.after_down,
        direction: Direction::Down,
        kind: crate::decide::ChangeKind::Plan,
    };
    let detail = format!(
        "{}; every look for {} passed ({} looks): step down {} -> {}",
        verdict.detail,
        crate::duration::display(section.window),
        streak.looks,
        change.from,
        change.to
    );
    (
        DownDecision::Change {
            change,
            detail,
            projected_memory_percent: verdict.projected_memory_percent,
        },
        streak,
    )
}

/// One whole look with the figures given, as `explain --down` asks it: the target, the
/// time gates, the guardrails (`guard`: what is known of pauses and recent changes), then
/// the evidence, with `streak` standing for the looks before this one.
pub fn decide_down(
    rules: &RuleSet,
    view: &DownView<'_>,
    guard: &crate::guard::GuardFigures<'_>,
    figures: &Figures<'_>,
    streak: Streak,
    now: Timestamp,
) -> DownDecision {
    let (section, step) = match target(rules, view, now) {
        Ok(found) => found,
        Err(verdict) => return DownDecision::Skip(verdict),
    };
    if let Err(verdict) = time_gates(section, view, now) {
        return DownDecision::Skip(verdict);
    }
    let id = view.names.id.and_then(|id| id.parse().ok()).unwrap_or(0);
    if let Err(verdict) = guardrails(rules, id, view, &step, guard, now) {
        return DownDecision::Skip(verdict);
    }
    judge(section, view, &step, figures, streak, now).0
}
