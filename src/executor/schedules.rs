//! Schedules on a timer: while a `[[schedules]]` window is open, its `min_plan` is the floor
//! of the instances it selects, and each opening makes at most one change up per instance.
//!
//! One task for every schedule. It wakes at the next opening or every [`TICK`], finds the
//! windows open now, and for each instance a window selects (from `GET /api/instances`,
//! cached, listed again at least every 10 minutes) whose plan is below `min_plan` on a
//! ladder that holds both, makes one change up with `rule` = the schedule's name — not held
//! by the cooldown, but by single flight and the guardrails. The opening it acted on is
//! recorded with the change, so a restart inside the window makes no second one; a change
//! that fails is not retried until the next opening (alarms still act). A guardrail that
//! holds the change is recorded once per opening and reason, and the change is tried again
//! at the next tick: a freeze that ends inside the window lets it through.

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use super::Executor;
use super::state::LastDecision;
use crate::clock::between;
use crate::cloudamqp::InstanceSummary;
use crate::decide::{Direction, PlanChange, Reason};
use crate::rules::{InstanceNames, OpenWindow, RuleSet, Schedule};
use crate::store::{DecisionKind, NewScheduleRun};

/// How often the task looks at the schedules at most (it also wakes at each opening).
const TICK: Duration = Duration::from_secs(5);
/// How old the instance list a window selects from may be.
const LIST_MAX_AGE: Duration = super::guardrails::LIST_MAX_AGE;

/// What the task remembers between ticks, per schedule and instance: the opening for which
/// the instance was read and found at or above `min_plan` (no more reads for that opening),
/// and the refusal already recorded, with its opening and reason (recorded once).
#[derive(Debug, Default)]
struct Memory {
    checked: HashMap<(String, u64), Timestamp>,
    refused: HashMap<(String, u64), (Timestamp, Reason)>,
}

impl Executor {
    /// Acts on the schedules' windows until `stop`.
    pub async fn run_schedules(self, stop: CancellationToken) {
        let inner = &self.inner;
        let mut reloads = inner.rules.subscribe();
        let mut memory = Memory::default();
        loop {
            let loaded = inner.rules.snapshot();
            let rules = &loaded.rules;
            let now = inner.clock.now();
            self.show_next_openings(rules, now);
            // The budget's sum is shown while a cap is set, even with no schedule.
            if rules.schedules().is_empty() && rules.limits().max_monthly_price.is_none() {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    changed = reloads.changed() => if changed.is_err() { return },
                }
                continue;
            }
            for schedule in rules.schedules() {
                if stop.is_cancelled() {
                    return;
                }
                if let Some(window) = schedule.window_around(now) {
                    self.open_window(rules, schedule, window, &mut memory).await;
                }
            }
            self.show_managed_price(rules).await;
            let now = inner.clock.now();
            let wait = rules
                .schedules()
                .iter()
                .filter_map(|s| s.next_openings(now, 1).first().copied())
                .min()
                .map_or(TICK, |next| between(now, next))
                .clamp(Duration::from_millis(10), TICK);
            tokio::select! {
                _ = stop.cancelled() => return,
                () = inner.clock.sleep(wait) => {}
                changed = reloads.changed() => if changed.is_err() { return },
            }
        }
    }

    /// The metric of each schedule's next opening.
    fn show_next_openings(&self, rules: &RuleSet, now: Timestamp) {
        for schedule in rules.schedules() {
            if let Some(next) = schedule.next_openings(now, 1).first() {
                self.inner
                    .metrics
                    .schedule_next_opening(&schedule.name, next.as_second());
            }
        }
    }

    /// `autoscaler_managed_monthly_price`, when the list and the catalogue are known.
    async fn show_managed_price(&self, rules: &RuleSet) {
        let Some(api) = &self.inner.api else { return };
        let (Ok(managed), Ok(catalogue)) = (self.managed(rules).await, api.catalogue.get().await)
        else {
            return;
        };
        let prices: Option<f64> = managed
            .iter()
            .map(|(_, plan)| crate::decide::PlanPrices::price(catalogue.as_ref(), plan))
            .sum();
        if let Some(total) = prices {
            self.inner.metrics.managed_monthly_price(total);
        }
    }

    /// One open window: every instance it selects gets its chance at one change up.
    async fn open_window(
        &self,
        rules: &RuleSet,
        schedule: &Schedule,
        window: OpenWindow,
        memory: &mut Memory,
    ) {
        let Some(api) = &self.inner.api else {
            tracing::debug!(schedule = %schedule.name, "no CloudAMQP API key: a schedule cannot list the instances it selects");
            return;
        };
        let listed = match api.resolver.list_within(LIST_MAX_AGE).await {
            Ok(listed) => listed,
            Err(error) => {
                tracing::warn!(schedule = %schedule.name, %error, "the instances cannot be listed: the schedule's window acts at the next tick");
                return;
            }
        };
        for instance in listed {
            let id_text = instance.id.to_string();
            let names = InstanceNames {
                id: Some(&id_text),
                uuid: instance.providerid.as_deref(),
                name: Some(&instance.name),
            };
            if schedule.selects(&names) {
                self.schedule_instance(rules, schedule, window, &instance, memory)
                    .await;
            }
        }
    }

    /// The schedule's one change up for this opening on `listed`, if it is below the
    /// schedule's `min_plan` and has not had it yet.
    async fn schedule_instance(
        &self,
        rules: &RuleSet,
        schedule: &Schedule,
        window: OpenWindow,
        listed: &InstanceSummary,
        memory: &mut Memory,
    ) {
        let inner = &self.inner;
        let id = listed.id;
        let key = (schedule.name.clone(), id);
        // Replicas: one opens windows at a time, on the shared state as the database has it.
        if !self.on_duty(crate::store::Duty::Schedules) {
            return;
        }
        let world = match self.sync().await {
            Ok(world) => world,
            Err(error) => {
                tracing::warn!(instance = id, %error, "the shared state cannot be read: the schedule acts at the next tick");
                return;
            }
        };
        let done = |state: &super::state::InstanceState| {
            state.in_flight.is_some()
                || state
                    .schedule_runs
                    .get(&schedule.name)
                    .is_some_and(|opened| *opened >= window.opened)
        };
        // From memory first: most ticks change nothing and cost nothing.
        let (acted, known_plan) = inner
            .book
            .read(id, |state| (done(state), state.plan.clone()));
        if acted || memory.checked.get(&key) == Some(&window.opened) {
            return;
        }
        let id_text = id.to_string();
        let state = inner.book.get(id);
        // Held at an earlier tick: the guardrails again, on the plan known, before any read.
        if let Some((opened, _)) = memory.refused.get(&key)
            && *opened == window.opened
        {
            let plan = known_plan.unwrap_or_else(|| listed.plan.clone());
            let proposed = crate::guard::Proposed {
                instance_id: id,
                names: state.names(&id_text),
                direction: Direction::Up,
                kind: crate::decide::ChangeKind::Plan,
                from: &plan,
                to: &schedule.min_plan,
            };
            if let Some(held) = self.held(rules, &proposed, inner.clock.now()).await {
                let change = self.schedule_change(rules, schedule, &plan);
                let reason = Reason::from(held.guardrail);
                if memory.refused.get(&key) != Some(&(window.opened, reason)) {
                    memory.refused.insert(key, (window.opened, reason));
                    let now = inner.clock.now();
                    self.record_schedule_skip(
                        schedule,
                        window,
                        id,
                        &change,
                        (reason, held.detail),
                        now,
                    );
                }
                return;
            }
        }
        let Some(api) = &inner.api else { return };
        let gate = inner.book.gate(id);
        let _single_flight = gate.lock().await;
        if inner.book.read(id, done) {
            return;
        }
        // The API is the truth: the plan may have moved since it was last seen (once per
        // opening, unless a guardrail held the change).
        let instance = match api.client.instance(id).await {
            Ok(instance) => instance,
            Err(error) => {
                tracing::warn!(schedule = %schedule.name, instance = id, %error, "the instance cannot be read: the schedule tries again at the next tick");
                return;
            }
        };
        self.observe_instance(&instance);
        if !below(rules, &instance.plan, &schedule.min_plan) {
            memory.checked.insert(key, window.opened);
            return;
        }
        let now = inner.clock.now();
        let change = self.schedule_change(rules, schedule, &instance.plan);
        let state = inner.book.get(id);
        let proposed = crate::guard::Proposed {
            instance_id: id,
            names: state.names(&id_text),
            direction: Direction::Up,
            kind: crate::decide::ChangeKind::Plan,
            from: &change.from,
            to: &change.to,
        };
        if let Some(refusal) = self.move_refused(&change).await {
            // The catalogue will not change during the window: final for this opening.
            memory.checked.insert(key.clone(), window.opened);
            let detail = format!("{} -> {}, but {refusal}", change.from, change.to);
            let reason = (Reason::MoveNotAllowed, detail);
            self.record_schedule_skip(schedule, window, id, &change, reason, now);
            return;
        }
        let _budget_turn = self
            .budget_turn(rules, Direction::Up, crate::decide::ChangeKind::Plan)
            .await;
        let held = self
            .held(rules, &proposed, now)
            .await
            .map(|held| (Reason::from(held.guardrail), held.detail));
        if let Some((reason, detail)) = held {
            if memory.refused.get(&key) != Some(&(window.opened, reason)) {
                memory.refused.insert(key, (window.opened, reason));
                self.record_schedule_skip(schedule, window, id, &change, (reason, detail), now);
            }
            return;
        }
        if rules
            .scale_down()
            .is_some_and(|section| section.selects(&state.names(&id_text)))
        {
            self.learn_capacity_before_up(&instance).await;
            // A pause may have come during the read: held at the next tick.
            if self
                .held_without_budget(rules, &proposed, inner.clock.now())
                .is_some()
            {
                return;
            }
        }
        self.start_scheduled(schedule, window, id, change, world)
            .await;
    }

    /// The change up to the schedule's `min_plan` from `plan`.
    fn schedule_change(&self, rules: &RuleSet, schedule: &Schedule, plan: &str) -> PlanChange {
        PlanChange {
            from: plan.to_owned(),
            to: schedule.min_plan.clone(),
            rule: schedule.name.clone(),
            cooldown: rules.default_cooldown(),
            direction: Direction::Up,
            kind: crate::decide::ChangeKind::Plan,
        }
    }

    /// Records a guardrail's refusal of a schedule's change, and shows it.
    fn record_schedule_skip(
        &self,
        schedule: &Schedule,
        window: OpenWindow,
        id: u64,
        change: &PlanChange,
        (reason, detail): (Reason, String),
        now: Timestamp,
    ) {
        let inner = &self.inner;
        let detail = format!("schedule {:?}: {detail}", schedule.name);
        tracing::info!(instance = id, schedule = %schedule.name, reason = %reason, %detail, "skip");
        inner.metrics.decision("skip", reason.code());
        inner.book.update(id, |state| {
            state.show_decision(LastDecision {
                at: now,
                decision: "skip",
                reason: Some(reason.code().to_owned()),
                rule: Some(schedule.name.clone()),
                detail: detail.clone(),
            });
        });
        let notes = self.blocked_notes(id, change, reason, &detail, now);
        let write = inner.store.with_notes(notes).record_schedule_run(
            NewScheduleRun {
                schedule: schedule.name.clone(),
                instance_id: id,
                opened_at: window.opened,
                at: now,
                plan: change.from.clone(),
                to_plan: change.to.clone(),
                kind: DecisionKind::Skip,
                reason: Some(reason.code().to_owned()),
                detail,
            },
            None,
        );
        tokio::spawn(async move {
            if let Err(error) = write.await {
                tracing::warn!(instance = id, %error, "could not record a schedule's refusal");
            }
        });
    }

    /// The schedule's change: the opening and the intent recorded together (durably,
    /// before anything is sent), then sent and followed like every other change.
    async fn start_scheduled(
        &self,
        schedule: &Schedule,
        window: OpenWindow,
        id: u64,
        change: PlanChange,
        world: Option<i64>,
    ) {
        let inner = &self.inner;
        let now = inner.clock.now();
        let live = inner.config.live;
        let detail = format!(
            "schedule {:?} opened at {}: {} {} -> {} (its min_plan) until {}",
            schedule.name,
            window.opened,
            if live {
                "change plan"
            } else {
                "would change plan"
            },
            change.from,
            change.to,
            window.closes
        );
        let run = NewScheduleRun {
            schedule: schedule.name.clone(),
            instance_id: id,
            opened_at: window.opened,
            at: now,
            plan: change.from.clone(),
            to_plan: change.to.clone(),
            kind: if live {
                DecisionKind::Change
            } else {
                DecisionKind::WouldChange
            },
            reason: None,
            detail: detail.clone(),
        };
        let new_change = super::change::new_change(id, None, &change, live, now, world);
        let notes = self.started_notes(id, &change, &detail, now);
        let change_id = match inner
            .store
            .with_notes(notes)
            .record_schedule_run(run, Some(new_change))
            .await
        {
            Ok(Some(change_id)) => change_id,
            Ok(None) | Err(_) => {
                tracing::error!(instance = id, schedule = %schedule.name, "could not record the schedule's change: not sending it (tried again at the next tick)");
                return;
            }
        };
        self.note_started(id, now);
        let decision = if live { "change" } else { "would_change" };
        inner.metrics.decision(decision, "");
        inner.book.update(id, |state| {
            state
                .schedule_runs
                .insert(schedule.name.clone(), window.opened);
            state.show_decision(LastDecision {
                at: now,
                decision: if live {
                    "change_plan"
                } else {
                    "would_change_plan"
                },
                reason: None,
                rule: Some(schedule.name.clone()),
                detail: detail.clone(),
            });
        });
        tracing::info!(instance = id, rule = %change.rule, direction = "up", %detail, "{} {} -> {}", if live { "change plan" } else { "would change plan" }, change.from, change.to);
        if live {
            self.send_recorded(id, change_id, &change, now);
        } else {
            self.finish_dry_run(id, change_id, &change, now);
        }
    }
}

/// Whether `plan` is below `min_plan` on a ladder that holds both.
fn below(rules: &RuleSet, plan: &str, min_plan: &str) -> bool {
    rules
        .ladder_holding(plan, min_plan)
        .and_then(|ladder| Some(ladder.rung(plan)? < ladder.rung(min_plan)?))
        .unwrap_or(false)
}
