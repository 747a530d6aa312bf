//! Gathering what the pure [`crate::guard::hold`] needs: the pauses in force, when the
//! instance's recent changes started and, for a change up under `max_monthly_price`, the
//! managed instances' plans and the catalogue's prices.

use std::time::Duration;

use jiff::Timestamp;

use super::Executor;
use crate::decide::{Direction, PlanPrices};
use crate::guard::{BudgetView, GuardFigures, Held, Proposed};
use crate::rules::{InstanceNames, RuleSet};

/// How old the instance list the budget sums over may be.
pub(super) const LIST_MAX_AGE: Duration = Duration::from_secs(10 * 60);

impl Executor {
    /// The guardrail that holds `proposed` at `now`, if any. Only a change up under a
    /// `max_monthly_price` costs API calls (the instance list and the catalogue, both
    /// cached); everything else is in memory.
    pub(super) async fn held(
        &self,
        rules: &RuleSet,
        proposed: &Proposed<'_>,
        now: Timestamp,
    ) -> Option<Held> {
        // What needs no call first: a pause or a freeze holds whatever the budget says.
        if let Some(held) = self.held_without_budget(rules, proposed, now) {
            return Some(held);
        }
        if proposed.direction != Direction::Up
            || proposed.kind == crate::decide::ChangeKind::Disk
            || rules.limits().max_monthly_price.is_none()
        {
            return None;
        }
        let pauses = [];
        let starts = [];
        let figures = |budget| GuardFigures {
            pauses: &pauses,
            change_starts: &starts,
            budget,
        };
        let Some(api) = &self.inner.api else {
            let missing = "a CloudAMQP API key to read the catalogue and the instances with";
            return crate::guard::hold(
                rules,
                proposed,
                &figures(BudgetView::Unknown(missing)),
                now,
            );
        };
        let catalogue = match api.catalogue.get().await {
            Ok(catalogue) => catalogue,
            Err(error) => {
                let missing = format!("the catalogue of plan prices ({error})");
                return crate::guard::hold(
                    rules,
                    proposed,
                    &figures(BudgetView::Unknown(&missing)),
                    now,
                );
            }
        };
        let managed = match self.managed(rules).await {
            Ok(managed) => managed,
            Err(error) => {
                let missing = format!("the list of instances ({error})");
                return crate::guard::hold(
                    rules,
                    proposed,
                    &figures(BudgetView::Unknown(&missing)),
                    now,
                );
            }
        };
        let managed: Vec<(u64, &str)> = managed.iter().map(|(id, p)| (*id, p.as_str())).collect();
        let budget = BudgetView::Known {
            prices: catalogue.as_ref() as &dyn PlanPrices,
            managed: &managed,
        };
        crate::guard::hold(rules, proposed, &figures(budget), now)
    }

    /// The pauses, freezes and `max_changes`, from memory alone (a change down never
    /// meets the budget).
    pub(super) fn held_without_budget(
        &self,
        rules: &RuleSet,
        proposed: &Proposed<'_>,
        now: Timestamp,
    ) -> Option<Held> {
        let starts = self
            .inner
            .book
            .read(proposed.instance_id, |state| state.change_starts.clone());
        self.held_by_memory(rules, proposed, &starts, now)
    }

    /// [`held_without_budget`](Self::held_without_budget) with the instance's change starts
    /// given (by a caller that holds the book's lock).
    pub(super) fn held_by_memory(
        &self,
        rules: &RuleSet,
        proposed: &Proposed<'_>,
        change_starts: &[Timestamp],
        now: Timestamp,
    ) -> Option<Held> {
        let pauses = self.inner.pauses.in_force(now);
        let figures = GuardFigures {
            pauses: &pauses,
            change_starts,
            budget: BudgetView::NotChecked,
        };
        crate::guard::hold(rules, proposed, &figures, now)
    }

    /// What the guardrails keep in memory for instance `id`: the pauses in force and when
    /// its recent changes started.
    pub(super) fn guard_memory(
        &self,
        id: u64,
        now: Timestamp,
    ) -> (Vec<crate::guard::Pause>, Vec<Timestamp>) {
        (
            self.inner.pauses.in_force(now),
            self.inner
                .book
                .read(id, |state| state.change_starts.clone()),
        )
    }

    /// Every instance the daemon manages, with its plan (ours when we know a fresher one
    /// than the list's).
    pub(super) async fn managed(&self, rules: &RuleSet) -> Result<Vec<(u64, String)>, String> {
        let Some(api) = &self.inner.api else {
            return Err("no CloudAMQP API key".into());
        };
        let listed = api
            .resolver
            .list_within(LIST_MAX_AGE)
            .await
            .map_err(|e| e.to_string())?;
        let mut managed: Vec<(u64, String)> = listed
            .into_iter()
            .filter(|instance| {
                let id = instance.id.to_string();
                rules.manages(&InstanceNames {
                    id: Some(&id),
                    uuid: instance.providerid.as_deref(),
                    name: Some(&instance.name),
                })
            })
            .map(|instance| {
                // A change up in flight is counted at the plan it goes to.
                let plan = self
                    .inner
                    .book
                    .read(instance.id, |state| {
                        state
                            .in_flight
                            .as_ref()
                            .filter(|change| {
                                change.direction == Direction::Up
                                    && change.kind == crate::decide::ChangeKind::Plan
                            })
                            .map(|change| change.to.clone())
                            .or_else(|| state.plan.clone())
                    })
                    .unwrap_or(instance.plan);
                (instance.id, plan)
            })
            .collect();
        managed.sort_unstable();
        Ok(managed)
    }

    /// For a change up under `max_monthly_price`: one at a time from the budget check
    /// until its intent is recorded (and its plan counted), so two changes checked at
    /// once cannot both fit a budget only one fits. Hold the guard that long.
    pub(super) async fn budget_turn(
        &self,
        rules: &RuleSet,
        direction: Direction,
        kind: crate::decide::ChangeKind,
    ) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        if direction == Direction::Up
            && kind == crate::decide::ChangeKind::Plan
            && rules.limits().max_monthly_price.is_some()
        {
            Some(self.inner.budget_turn.lock().await)
        } else {
            None
        }
    }

    /// A change of instance `id` was started (its intent recorded) at `at`.
    pub(super) fn note_started(&self, id: u64, at: Timestamp) {
        self.inner.book.update(id, |state| state.note_started(at));
    }
}
