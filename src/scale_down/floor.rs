//! The floor and the next step toward it: the daemon only takes back what it added.

use std::cmp::Ordering;

use super::{DownReason, DownView, LookVerdict, UpStep};
use crate::rules::{Action, Ladder, RuleSet, ScaleDown};

/// Where a step down from the instance's plan goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The plan one step down.
    pub to: String,
    /// The floor it never goes below.
    pub floor: String,
}

/// An instance's floor, and what set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Floor<'a> {
    pub plan: &'a str,
    pub set_by: SetBy<'a>,
}

/// What set a floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetBy<'a> {
    /// The plan before the daemon's first upward change.
    Baseline,
    /// `[scale_down] min_plan`.
    MinPlan,
    /// A schedule whose window is open until the given time.
    Schedule(&'a str, jiff::Timestamp),
}

/// The floor of the instance named `names` with this baseline at `now`: the baseline, or
/// `min_plan`, or the `min_plan` of a schedule whose window is open, whichever is highest on
/// a ladder holding it and the baseline.
pub fn floor<'a>(
    rules: &'a RuleSet,
    min_plan: Option<&'a str>,
    baseline: &'a str,
    names: &crate::rules::InstanceNames<'_>,
    now: jiff::Timestamp,
) -> Floor<'a> {
    let mut floor = Floor {
        plan: baseline,
        set_by: SetBy::Baseline,
    };
    let mut raise = |plan: &'a str, set_by: SetBy<'a>| {
        if compare(rules, plan, floor.plan) == Some(Ordering::Greater) {
            floor = Floor { plan, set_by };
        }
    };
    if let Some(min) = min_plan {
        raise(min, SetBy::MinPlan);
    }
    for schedule in rules.schedules() {
        if schedule.selects(names)
            && let Some(window) = schedule.window_around(now)
        {
            raise(
                &schedule.min_plan,
                SetBy::Schedule(&schedule.name, window.closes),
            );
        }
    }
    floor
}

/// The next step down from the view's plan: one rung down the ladder of the rule behind the
/// last upward change that still stands (a targets rule: back to that change's `from`),
/// never below the floor.
pub fn step(
    rules: &RuleSet,
    section: &ScaleDown,
    view: &DownView<'_>,
    now: jiff::Timestamp,
) -> Result<Step, LookVerdict> {
    let plan = view.plan;
    let Some(baseline) = view.baseline else {
        return Err(LookVerdict::failed(
            DownReason::AtFloor,
            "the plan before the daemon's first upward change is not known: nothing is the daemon's to take back".into(),
        ));
    };
    let found = floor(
        rules,
        section.min_plan.as_deref(),
        baseline,
        &view.names,
        now,
    );
    let floor = found.plan;
    if plan == floor || compare(rules, plan, floor) == Some(Ordering::Less) {
        return Err(LookVerdict::failed(
            DownReason::AtFloor,
            format!(
                "plan {plan:?} is at the floor ({})",
                describe_floor(baseline, &found)
            ),
        ));
    }
    let undone = view
        .ups
        .iter()
        .rev()
        .find_map(|up| undo_one(rules, plan, up))
        .or_else(|| one_rung_down(ladder_with(rules, plan, floor)?, plan, floor));
    let Some(to) = undone else {
        return Err(LookVerdict::failed(
            DownReason::NotOnLadder,
            format!(
                "no ladder holds both {plan:?} and the floor {floor:?}, and no upward change of the daemon's leads back from it"
            ),
        ));
    };
    // Never below the floor.
    let to = if compare(rules, &to, floor) == Some(Ordering::Less) {
        floor.to_owned()
    } else {
        to
    };
    Ok(Step {
        to,
        floor: floor.to_owned(),
    })
}

fn describe_floor(baseline: &str, floor: &Floor<'_>) -> String {
    let plan = floor.plan;
    match floor.set_by {
        SetBy::Baseline => format!("the plan before the daemon raised it, {baseline:?}"),
        SetBy::MinPlan => {
            format!("min_plan {plan:?}, above the plan before the daemon raised it, {baseline:?}")
        }
        SetBy::Schedule(name, closes) => {
            format!("schedule {name:?} holds it at {plan:?} until its window closes at {closes}")
        }
    }
}

/// The plan one step back from `plan` for upward change `up`, if it still stands.
fn undo_one(rules: &RuleSet, plan: &str, up: &UpStep) -> Option<String> {
    if up.from == plan {
        return None;
    }
    let rule = rules.rules().iter().find(|rule| rule.name == up.rule);
    let back_to_from = || (up.to == plan).then(|| up.from.clone());
    match rule.map(|rule| &rule.action) {
        Some(Action::Ladder { ladder, .. }) => {
            let ladder = &rules.ladders()[*ladder];
            match ladder.rung(plan).zip(ladder.rung(&up.from)) {
                Some(_) => one_rung_down(ladder, plan, &up.from),
                None => back_to_from(),
            }
        }
        // A disk rule never made a plan change; `back_to_from` for completeness.
        Some(Action::Targets(_) | Action::Disk(_)) => back_to_from(),
        // A rule no longer in the file: its change still stands; a ladder holding both
        // plans says one rung, else straight back.
        None => match ladder_with(rules, plan, &up.from) {
            Some(ladder) => one_rung_down(ladder, plan, &up.from),
            None => back_to_from(),
        },
    }
}

/// One rung below `plan` on `ladder`, when `plan` is above `stop` there.
fn one_rung_down(ladder: &Ladder, plan: &str, stop: &str) -> Option<String> {
    let (rung, stop) = (ladder.rung(plan)?, ladder.rung(stop)?);
    (rung > stop).then(|| ladder.plans[rung - 1].clone())
}

/// The first ladder in file order holding both plans.
fn ladder_with<'r>(rules: &'r RuleSet, a: &str, b: &str) -> Option<&'r Ladder> {
    rules
        .ladders()
        .iter()
        .find(|ladder| ladder.rung(a).is_some() && ladder.rung(b).is_some())
}

/// `a` against `b` on the first ladder holding both.
fn compare(rules: &RuleSet, a: &str, b: &str) -> Option<Ordering> {
    let (ra, rb) = rules.rungs_on_common_ladder(a, b)?;
    Some(ra.cmp(&rb))
}
