//! PURE: the guardrails a change must pass once a rule, a look or a schedule wants it —
//! pauses, freezes, `max_changes` and the monthly budget — checked in that order.
//!
//! Like `decide`, this reads no clock, network or disk: the executor gathers the figures
//! (the pauses in force, when the instance's recent changes started, the managed
//! instances' plans and the catalogue's prices) and `explain` passes what it knows.

pub mod pause;

use std::fmt;

use jiff::Timestamp;
use serde::Serialize;

use crate::decide::{Direction, PlanPrices};
use crate::rules::{InstanceNames, RuleSet};

pub use pause::{Pause, PauseBook};

/// Why a guardrail holds a change. The codes are part of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Guardrail {
    Paused,
    Frozen,
    MaxChanges,
    Budget,
}

impl Guardrail {
    pub fn code(self) -> &'static str {
        match self {
            Self::Paused => "paused",
            Self::Frozen => "frozen",
            Self::MaxChanges => "max_changes",
            Self::Budget => "budget",
        }
    }
}

impl fmt::Display for Guardrail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A change a rule, a look or a schedule wants to make.
#[derive(Debug, Clone, Copy)]
pub struct Proposed<'a> {
    pub instance_id: u64,
    pub names: InstanceNames<'a>,
    pub direction: Direction,
    /// A disk change is held by pauses, freezes and `max_changes`, never by the budget.
    pub kind: crate::decide::ChangeKind,
    pub from: &'a str,
    pub to: &'a str,
}

/// What the budget is checked against.
#[derive(Clone, Copy)]
pub enum BudgetView<'a> {
    /// The catalogue's prices and the plan of every instance the daemon manages (the
    /// instance changing included or not: its plan after the change counts either way).
    Known {
        prices: &'a dyn PlanPrices,
        managed: &'a [(u64, &'a str)],
    },
    /// The figures are missing (no catalogue, or no list of instances): the budget
    /// refuses rather than guesses. The text says what is missing.
    Unknown(&'a str),
    /// Not checked at all (`explain`, which has no catalogue, says so itself).
    NotChecked,
}

impl fmt::Debug for BudgetView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Known { managed, .. } => f
                .debug_struct("Known")
                .field("managed", managed)
                .finish_non_exhaustive(),
            Self::Unknown(missing) => f.debug_tuple("Unknown").field(missing).finish(),
            Self::NotChecked => f.write_str("NotChecked"),
        }
    }
}

/// The run-time figures the guardrails look at.
#[derive(Debug, Clone, Copy)]
pub struct GuardFigures<'a> {
    /// The pauses in force.
    pub pauses: &'a [Pause],
    /// When the instance's recent changes (up and down) started, in any order.
    pub change_starts: &'a [Timestamp],
    pub budget: BudgetView<'a>,
}

impl GuardFigures<'_> {
    /// No pauses, no recent changes, the budget not checked: what `explain` knows.
    pub const NONE: GuardFigures<'static> = GuardFigures {
        pauses: &[],
        change_starts: &[],
        budget: BudgetView::NotChecked,
    };
}

/// A change a guardrail holds, and the sentence that says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub guardrail: Guardrail,
    pub detail: String,
}

/// The first guardrail that holds `proposed` at `now`, if any.
pub fn hold(
    rules: &RuleSet,
    proposed: &Proposed<'_>,
    figures: &GuardFigures<'_>,
    now: Timestamp,
) -> Option<Held> {
    paused(proposed, figures.pauses, now)
        .or_else(|| frozen(rules, proposed, now))
        .or_else(|| max_changes(rules, figures.change_starts, now))
        .or_else(|| budget(rules, proposed, figures.budget))
}

/// `decision` with the guardrails applied: a change a guardrail holds becomes a skip with
/// the guardrail's reason. What `explain` does with the figures it knows.
pub fn gate(
    rules: &RuleSet,
    decision: crate::decide::Decision,
    instance_id: u64,
    names: InstanceNames<'_>,
    figures: &GuardFigures<'_>,
    now: Timestamp,
) -> crate::decide::Decision {
    let crate::decide::Decision::Change(change) = decision else {
        return decision;
    };
    let proposed = Proposed {
        instance_id,
        names,
        direction: change.direction,
        kind: change.kind,
        from: &change.from,
        to: &change.to,
    };
    match hold(rules, &proposed, figures, now) {
        None => crate::decide::Decision::Change(change),
        Some(held) => crate::decide::Decision::Skip(held.skip(&change.rule)),
    }
}

impl Held {
    /// The skip a change of rule `rule` becomes.
    pub fn skip(self, rule: &str) -> crate::decide::Skip {
        crate::decide::Skip {
            reason: self.guardrail.into(),
            detail: format!("rule {rule:?}: {}", self.detail),
            rule: Some(rule.to_owned()),
        }
    }
}

fn what(proposed: &Proposed<'_>) -> String {
    format!(
        "the change {} -> {} ({})",
        proposed.from, proposed.to, proposed.direction
    )
}

fn paused(proposed: &Proposed<'_>, pauses: &[Pause], now: Timestamp) -> Option<Held> {
    let pause = pauses
        .iter()
        .filter(|p| p.holds(&proposed.names, proposed.direction, now))
        .max_by_key(|p| p.until)?;
    let reason = pause
        .reason
        .as_deref()
        .map_or_else(String::new, |r| format!(" ({r})"));
    Some(Held {
        guardrail: Guardrail::Paused,
        detail: format!(
            "{} is paused until {} by pause {}{reason}",
            what(proposed),
            pause.until,
            pause.id
        ),
    })
}

fn frozen(rules: &RuleSet, proposed: &Proposed<'_>, now: Timestamp) -> Option<Held> {
    // When several freezes hold, the one that lasts longest is the one to wait for.
    let (freeze, until) = rules
        .freezes()
        .iter()
        .filter_map(|f| {
            f.holding(proposed.direction, now)
                .map(|(_, until)| (f, until))
        })
        .max_by_key(|(_, until)| *until)?;
    Some(Held {
        guardrail: Guardrail::Frozen,
        detail: format!(
            "{} is held by the freeze {} until {until}",
            what(proposed),
            freeze.describe()
        ),
    })
}

fn max_changes(rules: &RuleSet, starts: &[Timestamp], now: Timestamp) -> Option<Held> {
    let limit = rules.limits().max_changes?;
    let since = crate::clock::sub(now, limit.per);
    let mut recent: Vec<Timestamp> = starts
        .iter()
        .copied()
        .filter(|&t| t > since && t <= now)
        .collect();
    if recent.len() < limit.count as usize {
        return None;
    }
    recent.sort();
    // The window frees a slot when the oldest change that fills it leaves it.
    let oldest = recent[recent.len() - limit.count as usize];
    Some(Held {
        guardrail: Guardrail::MaxChanges,
        detail: format!(
            "{} changes started in the last {} (max_changes allows {}); the next may start at {}",
            recent.len(),
            crate::duration::display(limit.per),
            limit.count,
            crate::clock::add(oldest, limit.per)
        ),
    })
}

fn budget(rules: &RuleSet, proposed: &Proposed<'_>, view: BudgetView<'_>) -> Option<Held> {
    let cap = rules.limits().max_monthly_price?;
    if proposed.direction != Direction::Up || proposed.kind == crate::decide::ChangeKind::Disk {
        return None;
    }
    let refuse = |detail: String| {
        Some(Held {
            guardrail: Guardrail::Budget,
            detail,
        })
    };
    let (prices, managed) = match view {
        BudgetView::NotChecked => return None,
        BudgetView::Unknown(missing) => {
            return refuse(format!(
                "{} is refused: max_monthly_price {} cannot be checked without {missing}",
                what(proposed),
                money(cap)
            ));
        }
        BudgetView::Known { prices, managed } => (prices, managed),
    };
    let mut total = 0.0;
    let mut counted_self = false;
    for &(id, plan) in managed {
        let plan = if id == proposed.instance_id {
            counted_self = true;
            proposed.to
        } else {
            plan
        };
        let Some(price) = prices.price(plan) else {
            return refuse(format!(
                "{} is refused: the catalogue has no price for plan {plan} (instance {id}), so \
                 max_monthly_price {} cannot be checked",
                what(proposed),
                money(cap)
            ));
        };
        total += price;
    }
    if !counted_self {
        match prices.price(proposed.to) {
            Some(price) => total += price,
            None => {
                return refuse(format!(
                    "{} is refused: the catalogue has no price for plan {}",
                    what(proposed),
                    proposed.to
                ));
            }
        }
    }
    if total <= cap {
        return None;
    }
    let before = prices
        .price(proposed.from)
        .map_or_else(String::new, |p| format!(" instead of {}", money(p)));
    let after = prices.price(proposed.to).map_or_else(String::new, money);
    refuse(format!(
        "{} would bring the managed instances to {}/month ({} at {after}{before}), over \
         max_monthly_price {}",
        what(proposed),
        money(total),
        proposed.to,
        money(cap)
    ))
}

/// `$3000` or `$12.50`.
fn money(amount: f64) -> String {
    if amount.fract() == 0.0 {
        format!("${amount:.0}")
    } else {
        format!("${amount:.2}")
    }
}

#[cfg(test)]
mod tests;
