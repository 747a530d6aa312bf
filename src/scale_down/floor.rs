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

/// The floor of an instance with this baseline: the baseline, or `min_plan` when that is
/// higher on a ladder holding both.
pub fn floor<'a>(rules: &RuleSet, section: &'a ScaleDown, baseline: &'a str) -> &'a str {
    match &section.min_plan {
        Some(min) if compare(rules, min, baseline) == Some(Ordering::Greater) => min,
        _ => baseline,
    }
}

/// The next step down from the view's plan: one rung down the ladder of the rule behind the
/// last upward change that still stands (a targets rule: back to that change's `from`),
/// never below the floor.
pub fn step(
    rules: &RuleSet,
    section: &ScaleDown,
    view: &DownView<'_>,
) -> Result<Step, LookVerdict> {
    let plan = view.plan;
    let Some(baseline) = view.baseline else {
        return Err(LookVerdict::failed(
            DownReason::AtFloor,
            "the plan before the daemon's first upward change is not known: nothing is the daemon's to take back".into(),
        ));
    };
    let floor = floor(rules, section, baseline);
    if plan == floor || compare(rules, plan, floor) == Some(Ordering::Less) {
        return Err(LookVerdict::failed(
            DownReason::AtFloor,
            format!(
                "plan {plan:?} is at the floor ({})",
                describe_floor(baseline, floor)
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

fn describe_floor(baseline: &str, floor: &str) -> String {
    if floor == baseline {
        format!("the plan before the daemon raised it, {baseline:?}")
    } else {
        format!("min_plan {floor:?}, above the plan before the daemon raised it, {baseline:?}")
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
        Some(Action::Targets(_)) => back_to_from(),
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
