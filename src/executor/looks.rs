//! Looks on a timer: one task for every instance above its floor.
//!
//! Each instance has a due time in one map; the task sleeps until the earliest, looks, and
//! sets the next due time `check_every` later. An instance's first due time is spread over
//! `check_every` by its id, so a thousand instances coming due together do not make a burst
//! of API calls, and every call goes through the client's one rate limit besides. An
//! instance at its floor, not selected, or with a change in flight is not in the map and
//! costs nothing; the time gates are checked before any call.
//!
//! A look reads the instance (one call) and, when it is ready, its management API (one
//! call), then hands the figures to the pure [`crate::scale_down::judge`]. A step down goes
//! through the same path as every change: the intent recorded before the PUT, then sent and
//! followed by [`Executor::spawn_submit`].

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use super::Executor;
use super::state::LastLook;
use crate::clock::{add, between};
use crate::cloudamqp::{ApiError, BrokerNode, Instance, ManagementAccess};
use crate::decide::PlanChange;
use crate::scale_down::{self, DownDecision, DownReason, Figures, LookVerdict, Step, Streak};
use crate::store::{DecisionKind, NewLook};

/// How often the task checks which instances are above their floor (at most; a shorter
/// `check_every` checks more often).
const RESYNC: Duration = Duration::from_secs(5);
/// How long a look's instance read may retry.
const LOOK_PATIENCE: Duration = Duration::from_secs(10);

/// What a look read from CloudAMQP and the instance's management API.
struct Read {
    instance: Result<Instance, String>,
    nodes: Result<Vec<BrokerNode>, String>,
}

impl Executor {
    /// Looks at the instances above their floor every `check_every` until `stop`.
    pub async fn run_looks(self, stop: CancellationToken) {
        let inner = &self.inner;
        let mut reloads = inner.rules.subscribe();
        let mut due: HashMap<u64, Timestamp> = HashMap::new();
        let mut synced_at: Option<Timestamp> = None;
        loop {
            let loaded = inner.rules.snapshot();
            let Some(section) = loaded.rules.scale_down() else {
                due.clear();
                // Nothing to do until the rules gain a [scale_down].
                tokio::select! {
                    _ = stop.cancelled() => return,
                    changed = reloads.changed() => if changed.is_err() { return },
                }
                synced_at = None;
                continue;
            };
            let every = section.check_every;
            let resync = RESYNC.min(every);
            let now = inner.clock.now();
            if synced_at.is_none_or(|at| between(at, now) >= resync) {
                let lookable: HashSet<u64> = self.lookable(&loaded.rules).into_iter().collect();
                due.retain(|id, _| lookable.contains(id));
                for id in lookable {
                    due.entry(id).or_insert_with(|| add(now, spread(id, every)));
                }
                synced_at = Some(now);
            }
            let mut ready: Vec<(Timestamp, u64)> = due
                .iter()
                .filter(|(_, at)| **at <= now)
                .map(|(id, at)| (*at, *id))
                .collect();
            ready.sort_unstable();
            // Replicas: the alarms other replicas received count too (a look steps down
            // only after a quiet the whole fleet saw).
            if !ready.is_empty()
                && self.shared()
                && self.on_duty(crate::store::Duty::Looks)
                && let Err(error) = self.reload_from_store().await
            {
                tracing::warn!(%error, "the shared state cannot be read: no looks this round");
                ready.clear();
            }
            for (at, id) in ready {
                if stop.is_cancelled() {
                    return;
                }
                self.look(id, &stop).await;
                let now = inner.clock.now();
                let next = add(at, every);
                due.insert(id, if next > now { next } else { add(now, every) });
            }
            let now = inner.clock.now();
            let wait = due
                .values()
                .min()
                .map_or(resync, |next| between(now, *next))
                .min(resync);
            tokio::select! {
                _ = stop.cancelled() => return,
                () = inner.clock.sleep(wait) => {}
                changed = reloads.changed() => {
                    if changed.is_err() { return }
                    synced_at = None;
                }
            }
        }
    }

    /// The instances a look would look at: above the floor, selected, nothing in flight.
    fn lookable(&self, rules: &crate::rules::RuleSet) -> Vec<u64> {
        let now = self.inner.clock.now();
        self.inner.book.ids_where(|id, state| {
            let id_text = id.to_string();
            state.in_flight.is_none()
                && state
                    .down_view(&id_text)
                    .is_some_and(|view| scale_down::target(rules, &view, now).is_ok())
        })
    }

    /// One look at instance `id`, its gate held throughout: the time gates, then the reads
    /// (dropped if `stop` comes meanwhile), then the decision.
    async fn look(&self, id: u64, stop: &CancellationToken) {
        let inner = &self.inner;
        let gate = inner.book.gate(id);
        let _single_flight = gate.lock().await;
        // Replicas: one looks at a time, on the shared state as the database has it.
        if !self.on_duty(crate::store::Duty::Looks) {
            return;
        }
        let world = match self.sync().await {
            Ok(world) => world,
            Err(error) => {
                tracing::warn!(instance = id, %error, "the shared state cannot be read: no look now");
                return;
            }
        };
        let loaded = inner.rules.snapshot();
        let rules = &loaded.rules;
        let id_text = id.to_string();
        let state = inner.book.get(id);
        if state.in_flight.is_some() {
            return;
        }
        let Some(view) = state.down_view(&id_text) else {
            return;
        };
        let started = inner.clock.now();
        let Ok((section, step)) = scale_down::target(rules, &view, started) else {
            return;
        };
        if let Err(verdict) = scale_down::time_gates(section, &view, started) {
            self.note_look(id, view.plan, &step, &verdict, Streak::default(), started);
            return;
        }
        if let Err(verdict) = self.down_guardrails(rules, id, &view, &step, started) {
            self.note_look(id, view.plan, &step, &verdict, Streak::default(), started);
            return;
        }
        let read = tokio::select! {
            _ = stop.cancelled() => return,
            read = self.read_for_look(id, view.plan) => read,
        };
        let instance = match read.instance {
            Ok(instance) => instance,
            Err(why) => {
                let verdict = LookVerdict {
                    passed: false,
                    reason: DownReason::MetricsUnavailable,
                    detail: format!(
                        "the instance cannot be read from CloudAMQP ({why}): no evidence"
                    ),
                    projected_memory_percent: None,
                };
                let now = inner.clock.now();
                self.note_look(id, view.plan, &step, &verdict, Streak::default(), now);
                return;
            }
        };
        self.observe_instance(&instance);
        if instance.plan != view.plan {
            // Someone else changed it (the floor has moved with it), or a change of the
            // daemon's landed late: the next look starts from the plan as it is now.
            tracing::info!(instance = id, plan = %instance.plan, expected = view.plan, "the plan is not the one the look was for; looking again later");
            return;
        }
        if let Ok(nodes) = &read.nodes
            && instance.ready
        {
            self.remember_capacity(id, &instance.plan, nodes);
        }
        // Read again: the capacities may have grown, an alarm may have come.
        let state = inner.book.get(id);
        let Some(view) = state.down_view(&id_text) else {
            return;
        };
        let figures = Figures {
            ready: instance.ready,
            nodes: read.nodes.as_deref().map_err(String::as_str),
            seen_limit: state.capacities.get(&step.to).copied(),
        };
        let now = inner.clock.now();
        // The floor again, at `now`: a schedule's window may have opened during the reads.
        let Ok((section, again)) = scale_down::target(rules, &view, now) else {
            return;
        };
        if again.to != step.to {
            return;
        }
        let (decision, streak) =
            scale_down::judge(section, &view, &step, &figures, state.streak, now);
        match decision {
            DownDecision::Skip(verdict) => {
                self.note_look(id, view.plan, &step, &verdict, streak, now)
            }
            DownDecision::Change {
                change,
                detail,
                projected_memory_percent,
            } => {
                if let Some(refusal) = self.move_refused(&change).await {
                    let verdict = LookVerdict {
                        passed: false,
                        reason: DownReason::MoveNotAllowed,
                        detail: format!(
                            "step down {} -> {}, but {refusal}",
                            change.from, change.to
                        ),
                        projected_memory_percent,
                    };
                    self.note_look(id, view.plan, &step, &verdict, Streak::default(), now);
                    return;
                }
                // A pause may have come while the look was reading.
                if let Err(verdict) = self.down_guardrails(rules, id, &view, &step, now) {
                    self.note_look(id, view.plan, &step, &verdict, Streak::default(), now);
                    return;
                }
                self.start_down(
                    id,
                    &step,
                    change,
                    detail,
                    projected_memory_percent,
                    (started, now),
                    world,
                )
                .await;
            }
        }
    }

    /// The pauses, freezes and `max_changes` a step down must pass, from memory.
    fn down_guardrails(
        &self,
        rules: &crate::rules::RuleSet,
        id: u64,
        view: &scale_down::DownView<'_>,
        step: &Step,
        now: Timestamp,
    ) -> Result<(), LookVerdict> {
        let (pauses, starts) = self.guard_memory(id, now);
        let figures = crate::guard::GuardFigures {
            pauses: &pauses,
            change_starts: &starts,
            budget: crate::guard::BudgetView::NotChecked,
        };
        scale_down::guardrails(rules, id, view, step, &figures, now)
    }

    /// The instance read, then (when it is ready and on the plan looked at) its nodes.
    async fn read_for_look(&self, id: u64, plan: &str) -> Read {
        let no_nodes = |why: &str| Err(why.to_owned());
        let Some(api) = &self.inner.api else {
            let why = "no CloudAMQP API key, so the instance cannot be read";
            return Read {
                instance: Err(why.into()),
                nodes: no_nodes(why),
            };
        };
        let instance = match api.client.instance_within(id, LOOK_PATIENCE).await {
            Ok(instance) => instance,
            Err(ApiError::NotFound { .. }) => {
                let why = format!("CloudAMQP has no instance {id}");
                return Read {
                    instance: Err(why.clone()),
                    nodes: Err(why),
                };
            }
            Err(error) => {
                let why = error.to_string();
                return Read {
                    instance: Err(why.clone()),
                    nodes: Err(why),
                };
            }
        };
        if !instance.ready || instance.plan != plan {
            return Read {
                nodes: no_nodes("the instance is not ready"),
                instance: Ok(instance),
            };
        }
        let nodes = match instance.url.as_ref() {
            None => no_nodes("the instance object carries no url to read its management API with"),
            Some(url) => match ManagementAccess::new(api.client.management_url(), id, url) {
                Ok(access) => api
                    .client
                    .management_nodes(&access)
                    .await
                    .map_err(|e| e.to_string()),
                Err(error) => Err(error.to_string()),
            },
        };
        Read {
            instance: Ok(instance),
            nodes,
        }
    }

    /// Why CloudAMQP's catalogue forbids the step, when the catalogue is known and does.
    pub(super) async fn move_refused(&self, change: &PlanChange) -> Option<String> {
        let api = self.inner.api.as_ref()?;
        let catalogue = api.catalogue.get().await.ok()?;
        catalogue
            .move_allowed(&change.from, &change.to)
            .err()
            .map(|refusal| refusal.to_string())
    }

    /// Records a look that made no change, shows it, counts it, logs it (at info when its
    /// reason differs from the last look's, else at debug: a thousand instances looked at
    /// every five minutes would drown the log).
    fn note_look(
        &self,
        id: u64,
        plan: &str,
        step: &Step,
        verdict: &LookVerdict,
        streak: Streak,
        at: Timestamp,
    ) {
        let inner = &self.inner;
        let reason = verdict.reason.code();
        let changed = inner.book.update(id, |state| {
            state.streak = streak;
            let changed = state
                .last_look
                .as_ref()
                .is_none_or(|last| last.reason.as_deref() != Some(reason));
            state.last_look = Some(LastLook {
                at,
                passed: verdict.passed,
                reason: Some(reason.to_owned()),
                detail: verdict.detail.clone(),
                projected_memory_percent: verdict.projected_memory_percent,
            });
            changed
        });
        if changed {
            tracing::info!(instance = id, plan, to = %step.to, passed = verdict.passed, reason, detail = %verdict.detail, "scale-down look");
        } else {
            tracing::debug!(instance = id, plan, to = %step.to, passed = verdict.passed, reason, detail = %verdict.detail, "scale-down look");
        }
        inner.metrics.scale_down_look(verdict.passed, reason);
        let notes = match verdict.reason.guardrail() {
            Some(guardrail) => {
                let held = PlanChange {
                    from: plan.to_owned(),
                    to: step.to.clone(),
                    rule: crate::scale_down::RULE.to_owned(),
                    cooldown: std::time::Duration::ZERO,
                    direction: crate::decide::Direction::Down,
                    kind: crate::decide::ChangeKind::Plan,
                };
                self.blocked_notes(id, &held, guardrail, &verdict.detail, at)
            }
            None => Vec::new(),
        };
        let write = inner.store.with_notes(notes).record_look(
            NewLook {
                instance_id: id,
                at,
                plan: plan.to_owned(),
                to_plan: Some(step.to.clone()),
                passed: verdict.passed,
                reason: Some(reason.to_owned()),
                detail: verdict.detail.clone(),
                projected_memory_percent: verdict.projected_memory_percent,
                kind: DecisionKind::Skip,
            },
            None,
        );
        tokio::spawn(async move {
            if let Err(error) = write.await {
                tracing::warn!(instance = id, %error, "could not record a look");
            }
        });
    }

    /// The step down: unless an alarm came since the look began, the look and the intended
    /// change are recorded (durably, before anything is sent), then the change is sent and
    /// followed like any other; in a dry run it is logged and `after_down` held.
    #[allow(clippy::too_many_arguments)]
    async fn start_down(
        &self,
        id: u64,
        step: &Step,
        change: PlanChange,
        detail: String,
        projected_memory_percent: Option<f64>,
        (started, now): (Timestamp, Timestamp),
        world: Option<i64>,
    ) {
        let inner = &self.inner;
        let alarmed = inner.book.read(id, |state| {
            state.last_alarm.is_some_and(|alarm| alarm >= started)
        });
        if alarmed {
            let verdict = LookVerdict {
                passed: false,
                reason: DownReason::NotQuiet,
                detail: "an alarm for the instance came while the look was deciding: no step down"
                    .into(),
                projected_memory_percent,
            };
            self.note_look(id, &change.from, step, &verdict, Streak::default(), now);
            return;
        }
        let live = inner.config.live;
        let look = NewLook {
            instance_id: id,
            at: now,
            plan: change.from.clone(),
            to_plan: Some(change.to.clone()),
            passed: true,
            reason: None,
            detail: detail.clone(),
            projected_memory_percent,
            kind: if live {
                DecisionKind::Change
            } else {
                DecisionKind::WouldChange
            },
        };
        let new_change = super::change::new_change(id, None, &change, live, now, world);
        let notes = self.started_notes(id, &change, &detail, now);
        let change_id = match inner
            .store
            .with_notes(notes)
            .record_look(look, Some(new_change))
            .await
        {
            Ok(Some(change_id)) => change_id,
            Ok(None) | Err(_) => {
                tracing::error!(
                    instance = id,
                    "could not record the intended step down: not sending it"
                );
                return;
            }
        };
        self.note_started(id, now);
        inner.metrics.scale_down_look(true, "change");
        inner.book.update(id, |state| {
            state.streak = Streak::default();
            state.last_look = Some(LastLook {
                at: now,
                passed: true,
                reason: None,
                detail: detail.clone(),
                projected_memory_percent,
            });
        });
        if !live {
            tracing::info!(instance = id, rule = %change.rule, direction = "down", %detail, "would change plan {} -> {}", change.from, change.to);
            self.finish_dry_run(id, change_id, &change, now);
            return;
        }
        tracing::info!(instance = id, rule = %change.rule, direction = "down", %detail, "change plan {} -> {}", change.from, change.to);
        self.send_recorded(id, change_id, &change, now);
    }
}

/// Where in `every` instance `id` first comes due: spread evenly by a hash of the id, the
/// same at every start.
fn spread(id: u64, every: Duration) -> Duration {
    let nanos = u64::try_from(every.as_nanos()).unwrap_or(u64::MAX).max(1);
    // Fibonacci hashing: consecutive ids land far apart.
    Duration::from_nanos(id.wrapping_mul(0x9E37_79B9_7F4A_7C15) % nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_looks_spread_over_the_interval() {
        let every = Duration::from_secs(300);
        let mut buckets = [0u32; 10];
        for id in 359_000..360_000 {
            let at = spread(id, every);
            assert!(at < every);
            buckets[(at.as_secs() / 30) as usize] += 1;
        }
        // A thousand consecutive ids: every tenth of the interval gets close to a hundred.
        assert!(
            buckets.iter().all(|n| (70..=130).contains(n)),
            "{buckets:?}"
        );
        assert_eq!(spread(7, every), spread(7, every));
    }
}
