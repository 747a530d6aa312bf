//! One alarm, one decision: resolve the instance, take one snapshot of the rules, decide —
//! from our own state when that settles it, else on the plan read fresh from CloudAMQP.

use crate::decide::{self, Decision, InstanceView, PlanPrices, Reason};
use crate::instance::InstanceRef;
use crate::rules::InstanceNames;
use crate::store::{DecisionKind, NewDecision};

use super::state::{Finished, InstanceState, LastDecision};
use super::{Executor, Job};

/// How often a decision is taken again when the shared state moved under it. Each time
/// means another decision's change went in (progress elsewhere), and after the first the
/// retries of one replica take turns on reads already made, so they are quick.
const STALE_RETRIES: usize = 20;

/// What a decision read from CloudAMQP, kept across its retries on replicas: a retry
/// decides again on the reloaded shared state, not on new reads (each would cost a
/// request and widen the window another change can slip into). The instance is read again
/// when the shared state shows it on another plan than the one read.
#[derive(Default)]
pub(super) struct Reads {
    instance: Option<crate::cloudamqp::Instance>,
    disk: Option<Result<u32, String>>,
    capacity_learned: bool,
}

/// The change a decision would start rested on state another replica has changed since.
pub(super) struct Stale;

/// A decision not to act, reached.
#[expect(clippy::unnecessary_wraps, reason = "the shape `outcome_read` returns")]
fn skip_now(outcome: Outcome) -> Result<Option<Outcome>, Stale> {
    Ok(Some(outcome))
}

/// A decision not to act, about to be recorded.
#[derive(Debug)]
pub(super) struct Outcome {
    pub(super) instance_id: Option<u64>,
    pub(super) plan: Option<String>,
    pub(super) skip: decide::Skip,
    /// The change a guardrail held back (for its `change.blocked`).
    pub(super) held: Option<Box<decide::PlanChange>>,
}

impl Outcome {
    fn skip(instance_id: Option<u64>, reason: Reason, detail: String) -> Self {
        Self {
            instance_id,
            plan: None,
            skip: decide::Skip {
                reason,
                detail,
                rule: None,
            },
            held: None,
        }
    }
}

/// A decision reached as the alarm arrived, from our own state alone: see
/// [`Executor::decide_now`]. Recorded with its alarm, then handed to
/// [`Executor::decided_now`].
#[derive(Debug)]
pub struct QuickDecision {
    outcome: Outcome,
    /// The notifications it causes (a guardrail's refusal), recorded with it.
    notes: Vec<crate::store::NewNotification>,
    at: jiff::Timestamp,
}

impl QuickDecision {
    /// The decision's row, for the store to record together with its alarm.
    pub fn row(&self) -> NewDecision {
        skip_row(&self.outcome, self.at)
    }

    /// The notifications to record with it (taken: they are written once).
    pub fn take_notes(&mut self) -> Vec<crate::store::NewNotification> {
        std::mem::take(&mut self.notes)
    }
}

/// The instance an alarm is about, as far as can be told without waiting.
enum Named {
    Id(u64),
    /// The alarm is decided by that alone (a resolve, no instance, an unknown UUID).
    Settled(Outcome),
    /// Only listing the instances can map this UUID (and there is an API key to list them).
    Lookup(uuid::Uuid),
}

impl Executor {
    /// Decides `alarm` at once when our own state settles it, without CloudAMQP: a resolve,
    /// an unknown instance, no matching rule, below every threshold, a change in flight, a
    /// cooldown. Such a decision is recorded in the same transaction as its alarm (no alarm
    /// ever waits undecided for it). It never starts a change, so it needs no turn at the
    /// instance's gate: it holds whatever a decision under way concludes. `None`: the alarm
    /// goes through the queue to [`Self::decide_alarm`].
    ///
    /// Replicas never decide on arrival: this replica's memory may be behind the
    /// database, so every alarm takes the database path.
    pub fn decide_now(&self, alarm: &crate::alarm::Alarm) -> Option<QuickDecision> {
        let inner = &self.inner;
        if self.shared() {
            return None;
        }
        let loaded = inner.rules.snapshot();
        let now = inner.clock.now();
        let outcome = match self.named(alarm, &loaded.rules) {
            Named::Settled(outcome) => outcome,
            Named::Lookup(_) => return None,
            // Every reminder during a change or a cooldown comes this way: no copy of the
            // instance's state. The alarm restarts the instance's quiet period at once, so a
            // look deciding meanwhile does not step it down.
            Named::Id(id) => {
                let decided = inner
                    .book
                    .update_if_known(id, |state| {
                        state.note_alarm(alarm, now);
                        let outcome = self.early_outcome(alarm, &loaded.rules, id, state)?;
                        let notes =
                            self.skip_notes(&loaded.rules, &alarm.kind, &outcome, state, now);
                        Some((outcome, notes))
                    })
                    .unwrap_or_else(|| {
                        self.early_outcome(alarm, &loaded.rules, id, &InstanceState::default())
                            .map(|outcome| (outcome, Vec::new()))
                    })
                    .or_else(|| inner.api.is_none().then(|| (no_api_key(id), Vec::new())))?;
                return Some(QuickDecision {
                    outcome: decided.0,
                    notes: decided.1,
                    at: now,
                });
            }
        };
        Some(QuickDecision {
            outcome,
            notes: Vec::new(),
            at: now,
        })
    }

    /// `quick` is on disk with alarm `alarm_id`: log it, count it, show it in `/status`.
    pub fn decided_now(
        &self,
        alarm_id: crate::store::AlarmId,
        alarm_kind: &str,
        quick: QuickDecision,
    ) {
        self.announce(alarm_id, alarm_kind, &quick.outcome, quick.at);
    }

    /// Decides one alarm and acts on the decision.
    pub(super) async fn decide_alarm(&self, job: Job) {
        // One snapshot of the rules for the whole decision, never re-read half-way.
        let loaded = self.inner.rules.snapshot();
        let id = match self.named(&job.alarm, &loaded.rules) {
            Named::Id(id) => id,
            Named::Settled(outcome) => return self.record(job.alarm_id, &job.alarm.kind, outcome),
            Named::Lookup(uuid) => match self.resolve(uuid).await {
                Ok(id) => id,
                Err(outcome) => return self.record(job.alarm_id, &job.alarm.kind, outcome),
            },
        };
        self.inner
            .book
            .update(id, |state| state.note_alarm(&job.alarm, job.received_at));
        // Single flight: one decision at a time per instance, recorded before the next.
        let gate = self.inner.book.gate(id);
        let _single_flight = gate.lock().await;
        // Replicas: decided on the shared state as the database has it now; a change whose
        // state moved meanwhile is decided again on the reloaded state.
        let mut reads = Reads::default();
        for attempt in 0..STALE_RETRIES {
            // The first attempt runs beside this replica's other decisions; once the state
            // moved under it, its retries take turns with theirs (on reads already made),
            // so they no longer race each other.
            let _turn = if attempt > 0 {
                Some(self.inner.change_turn.lock().await)
            } else {
                None
            };
            let world = match self.sync().await {
                Ok(world) => world,
                Err(error) => {
                    tracing::warn!(alarm_id = job.alarm_id, %error, "the shared state cannot be read: the alarm stays undecided and is taken up again once its claim ends");
                    return;
                }
            };
            match self
                .outcome(&job, &loaded.rules, id, world, &mut reads)
                .await
            {
                Ok(Some(outcome)) => return self.record(job.alarm_id, &job.alarm.kind, outcome),
                Ok(None) => return,
                Err(Stale) => {}
            }
        }
        tracing::warn!(
            alarm_id = job.alarm_id,
            instance = id,
            "the shared state kept moving under this decision: the alarm is taken up again once its claim ends"
        );
    }

    /// The instance an alarm is about, without waiting for anything.
    fn named(&self, alarm: &crate::alarm::Alarm, rules: &crate::rules::RuleSet) -> Named {
        let inner = &self.inner;
        let named = alarm.instance.or(inner.config.default_instance);
        let known_id = match named {
            Some(InstanceRef::Id(id)) => Some(id),
            _ => None,
        };
        if alarm.resolved
            && let Decision::Skip(skip) = decide::decide(
                rules,
                alarm,
                &view("", None, InstanceNames::default()),
                inner.clock.now(),
                None,
            )
        {
            return Named::Settled(Outcome {
                instance_id: known_id,
                plan: None,
                skip,
                held: None,
            });
        }
        let Some(named) = named else {
            return Named::Settled(Outcome::skip(
                None,
                Reason::InstanceUnknown,
                "the alarm names no instance and cloudamqp.default_instance is not set".into(),
            ));
        };
        let uuid = match named {
            InstanceRef::Id(id) => return Named::Id(id),
            InstanceRef::Uuid(uuid) => uuid,
        };
        let Some(api) = &inner.api else {
            return Named::Settled(uuid_without_api_key(uuid));
        };
        match api.resolver.cached(named) {
            Some(Ok(id)) => {
                self.remember_listed(api, id);
                Named::Id(id)
            }
            Some(Err(error)) => Named::Settled(unresolved(uuid, error)),
            None => Named::Lookup(uuid),
        }
    }

    /// The decision for `job` on instance `id`, its gate held; `None` when a change was
    /// started (it records itself).
    /// `world`: the shared state's version the book was synced at. `Err(Stale)`: the
    /// change it would start rested on state another replica changed; nothing written.
    async fn outcome(
        &self,
        job: &Job,
        rules: &crate::rules::RuleSet,
        id: u64,
        world: Option<i64>,
        reads: &mut Reads,
    ) -> Result<Option<Outcome>, Stale> {
        let inner = &self.inner;
        let alarm = &job.alarm;
        let state = inner.book.get(id);
        // First from our own state: without an API call when that settles it.
        if let Some(outcome) = self.early_outcome(alarm, rules, id, &state) {
            return Ok(Some(outcome));
        }
        self.outcome_read(job, rules, id, world, reads).await
    }

    /// [`Self::outcome`] once our own state does not settle it: on the instance as read.
    async fn outcome_read(
        &self,
        job: &Job,
        rules: &crate::rules::RuleSet,
        id: u64,
        world: Option<i64>,
        reads: &mut Reads,
    ) -> Result<Option<Outcome>, Stale> {
        let inner = &self.inner;
        let alarm = &job.alarm;
        let state = inner.book.get(id);
        let id_text = id.to_string();
        let last_finished = state.last_up;

        // The API is the truth: someone may have changed the plan in the console.
        let Some(api) = &inner.api else {
            return skip_now(no_api_key(id));
        };
        if reads
            .instance
            .as_ref()
            .is_some_and(|read| state.plan.as_deref() != Some(read.plan.as_str()))
        {
            // The shared state shows it on another plan since: read it again.
            *reads = Reads::default();
        }
        let read = match reads.instance.take() {
            Some(read) => Ok(read),
            None => api.client.instance(id).await,
        };
        let instance = match read {
            Ok(instance) => instance,
            Err(crate::cloudamqp::ApiError::NotFound { .. }) => {
                return skip_now(Outcome::skip(
                    Some(id),
                    Reason::InstanceUnknown,
                    format!("CloudAMQP has no instance {id}"),
                ));
            }
            Err(error) => {
                return skip_now(Outcome::skip(
                    Some(id),
                    Reason::PlanUnknown,
                    format!("the instance's plan could not be read from CloudAMQP: {error}"),
                ));
            }
        };
        self.observe_instance(&instance);
        reads.instance = Some(instance.clone());
        let state = inner.book.get(id);
        let names = state.names(&id_text);
        // The extra disk, read fresh when a disk rule of the type picks the instance.
        // `Err`: the read failed; the disk rules then cannot act (as at their largest size),
        // and only a plan rule may.
        let disk = if disk_rule_selects(rules, &alarm.kind, &names) {
            match &reads.disk {
                Some(read) => read.clone(),
                None => {
                    let read = match api.client.nodes(id).await {
                        Ok(nodes) => {
                            let size = crate::cloudamqp::extra_disk(&nodes).unwrap_or(0);
                            inner.book.update(id, |state| state.disk = Some(size));
                            Ok(size)
                        }
                        Err(error) => Err(error.to_string()),
                    };
                    reads.disk = Some(read.clone());
                    read
                }
            }
        } else {
            Ok(state.disk.unwrap_or(0))
        };
        let catalogue = api.catalogue.get().await.ok();
        let prices = catalogue.as_deref().map(|c| c as &dyn PlanPrices);
        let decision = decide::decide(
            rules,
            alarm,
            &InstanceView {
                disk: *disk.as_ref().unwrap_or(&u32::MAX),
                last_disk_change_finished: state.last_disk,
                ..view(&instance.plan, last_finished, names)
            },
            inner.clock.now(),
            prices,
        );
        let plan = Some(instance.plan.clone());
        let change = match decision {
            Decision::Change(change) => change,
            Decision::Skip(_) if let Err(error) = &disk => {
                return skip_now(Outcome::skip(
                    Some(id),
                    Reason::PlanUnknown,
                    format!("the instance's extra disk could not be read from CloudAMQP: {error}"),
                ));
            }
            Decision::Skip(skip) => {
                return skip_now(Outcome {
                    instance_id: Some(id),
                    plan,
                    skip,
                    held: None,
                });
            }
        };
        let proposed = crate::guard::Proposed {
            instance_id: id,
            names,
            direction: change.direction,
            kind: change.kind,
            from: &change.from,
            to: &change.to,
        };
        let _budget_turn = self.budget_turn(rules, change.direction, change.kind).await;
        if let Some(held) = self.held(rules, &proposed, inner.clock.now()).await {
            return skip_now(Outcome {
                instance_id: Some(id),
                plan,
                skip: held.skip(&change.rule),
                held: Some(Box::new(change)),
            });
        }
        if change.kind == decide::ChangeKind::Plan
            && let Some(catalogue) = &catalogue
            && let Err(refusal) = catalogue.move_allowed(&change.from, &change.to)
        {
            return skip_now(Outcome {
                instance_id: Some(id),
                plan,
                skip: decide::Skip {
                    reason: Reason::MoveNotAllowed,
                    detail: format!(
                        "rule {:?} would change {} -> {}, but {refusal}",
                        change.rule, change.from, change.to
                    ),
                    rule: Some(change.rule),
                },
                held: None,
            });
        }
        if change.kind == decide::ChangeKind::Plan
            && rules
                .scale_down()
                .is_some_and(|section| section.selects(&names))
        {
            if !reads.capacity_learned {
                self.learn_capacity_before_up(&instance).await;
                reads.capacity_learned = true;
            }
            // A pause may have come during the read.
            if let Some(held) = self.held_without_budget(rules, &proposed, inner.clock.now()) {
                return skip_now(Outcome {
                    instance_id: Some(id),
                    plan,
                    skip: held.skip(&change.rule),
                    held: Some(Box::new(change)),
                });
            }
        }
        self.start_change(job, id, &instance.plan, change, world)
            .await?;
        Ok(None)
    }

    /// The decision from our own state (`state` of instance `id`) when it settles it: a
    /// change in flight, or a skip that holds whatever the plan is now, or a cooldown on a
    /// known plan. `None`: only the plan read from CloudAMQP can tell.
    fn early_outcome(
        &self,
        alarm: &crate::alarm::Alarm,
        rules: &crate::rules::RuleSet,
        id: u64,
        state: &InstanceState,
    ) -> Option<Outcome> {
        if let Some(change) = &state.in_flight {
            return Some(Outcome::skip(
                Some(id),
                Reason::ChangeInFlight,
                format!(
                    "a change of the {} (rule {:?}) is in flight since {}",
                    crate::decide::describe_move(change.kind, &change.from, &change.to),
                    change.rule,
                    change.started_at
                ),
            ));
        }
        let id_text = id.to_string();
        let names = state.names(&id_text);
        let last_finished = state.last_up;
        let cached_plan = state.plan.as_deref().unwrap_or("");
        // A disk rule needs the extra disk: until it has been read, only what holds
        // whatever the size settles the alarm here.
        let disk_unknown = state.disk.is_none() && disk_rule_selects(rules, &alarm.kind, &names);
        let early = decide::decide(
            rules,
            alarm,
            &InstanceView {
                disk: state.disk.unwrap_or(0),
                last_disk_change_finished: state.last_disk,
                ..view(cached_plan, last_finished, names)
            },
            self.inner.clock.now(),
            None,
        );
        // Until the instance has been read once its name is unknown, and a rule that picks
        // instances by name might yet pick it: "not selected" or "below threshold" then
        // only holds once the name is known.
        let names_pending = state.name.is_none()
            && rules
                .rules_for(&alarm.kind)
                .any(|rule| rule.selectors.iter().any(|s| !s.is_any()));
        // The others hold whatever the plan is now, except a cooldown, which needs a plan.
        let settled = |reason: Reason| match reason {
            Reason::Resolved | Reason::NoMatchingRule => true,
            Reason::InstanceNotSelected | Reason::BelowThreshold => !names_pending,
            Reason::Cooldown => state.plan.is_some() && !disk_unknown,
            _ => false,
        };
        // A disk never shrinks: at a disk rule's largest size (read or reached) it stays there.
        let disk_at_top = |skip: &decide::Skip| {
            skip.reason == Reason::TopOfLadder
                && state.disk.is_some()
                && !names_pending
                && skip.rule.as_deref().is_some_and(|name| {
                    rules
                        .disk_rules_for(&alarm.kind)
                        .any(|rule| rule.name == name)
                })
        };
        match early {
            Decision::Skip(skip) if settled(skip.reason) || disk_at_top(&skip) => Some(Outcome {
                instance_id: Some(id),
                plan: state.plan.clone(),
                skip,
                held: None,
            }),
            // A pause, a freeze or a full `max_changes` holds whatever the plan is now
            // (from memory): an alarm they hold costs no call, however many come.
            Decision::Change(change) if !names_pending && state.plan.is_some() && !disk_unknown => {
                let proposed = crate::guard::Proposed {
                    instance_id: id,
                    names,
                    direction: change.direction,
                    kind: change.kind,
                    from: &change.from,
                    to: &change.to,
                };
                // From `state` itself: the book may be locked by the caller (`decide_now`).
                let now = self.inner.clock.now();
                let held = self.held_by_memory(rules, &proposed, &state.change_starts, now)?;
                Some(Outcome {
                    instance_id: Some(id),
                    plan: state.plan.clone(),
                    skip: held.skip(&change.rule),
                    held: Some(Box::new(change)),
                })
            }
            _ => None,
        }
    }

    /// The integer id of the instance with this UUID, from CloudAMQP's list.
    async fn resolve(&self, uuid: uuid::Uuid) -> Result<u64, Outcome> {
        // `named` settles a UUID without an API key itself; this only keeps the types honest.
        let Some(api) = &self.inner.api else {
            return Err(uuid_without_api_key(uuid));
        };
        match api.resolver.resolve(InstanceRef::Uuid(uuid)).await {
            Ok(id) => {
                self.remember_listed(api, id);
                Ok(id)
            }
            Err(error) => Err(unresolved(uuid, error)),
        }
    }

    /// Keeps what the instance list said about `id` (name, UUID, plan) when we know nothing
    /// of it yet: rules may pick it by name or UUID. A plan read or reached since is fresher
    /// than the list's and stays.
    fn remember_listed(&self, api: &super::Api, id: u64) {
        if self.inner.book.get(id).name.is_none()
            && let Some(known) = api.resolver.known(id)
        {
            self.remember_instance(id, &known.name, known.providerid.as_deref(), &known.plan);
        }
    }

    /// Records a decision that starts nothing. The write is queued at once; the alarm is
    /// marked decided when it commits (if it never does, the next start decides it again).
    fn record(&self, alarm_id: crate::store::AlarmId, alarm_kind: &str, outcome: Outcome) {
        let now = self.inner.clock.now();
        self.announce(alarm_id, alarm_kind, &outcome, now);
        let notes = self.skip_notes_now(alarm_kind, &outcome, now);
        let write = self.inner.store.with_notes(notes).record_decision(
            alarm_id,
            skip_row(&outcome, now),
            None,
        );
        tokio::spawn(async move {
            if let Err(error) = write.await {
                tracing::error!(alarm_id, %error, "could not record a decision; the alarm is decided again at the next start");
            }
        });
    }

    /// Logs and counts a decision not to act, and shows it in `/status`.
    fn announce(
        &self,
        alarm_id: crate::store::AlarmId,
        alarm_kind: &str,
        outcome: &Outcome,
        at: jiff::Timestamp,
    ) {
        let inner = &self.inner;
        let skip = &outcome.skip;
        tracing::info!(
            alarm_id,
            alarm = %alarm_kind,
            instance = outcome.instance_id,
            rule = skip.rule.as_deref(),
            reason = %skip.reason,
            detail = %skip.detail,
            "skip"
        );
        inner.metrics.decision("skip", skip.reason.code());
        if let Some(id) = outcome.instance_id {
            inner.book.update(id, |state| {
                state.show_decision(LastDecision {
                    at,
                    decision: "skip",
                    reason: Some(skip.reason.code().to_owned()),
                    rule: skip.rule.clone(),
                    detail: skip.detail.clone(),
                });
            });
        }
    }

    /// Decides an alarm found undecided at a start, accepted at `received_at`, as `stale`.
    pub(super) fn record_stale(
        &self,
        alarm_id: crate::store::AlarmId,
        alarm_kind: &str,
        received_at: jiff::Timestamp,
    ) {
        let outcome = Outcome::skip(
            None,
            Reason::Stale,
            format!(
                "the alarm was accepted at {received_at} and found undecided at this start, more \
                 than {} later: it says nothing about the load now (a lasting condition alarms again)",
                crate::duration::display(super::STALE_AFTER)
            ),
        );
        self.record(alarm_id, alarm_kind, outcome);
    }

    /// Marks a journaled alarm that can no longer be read as decided, with the reason.
    pub(super) fn record_unreadable(&self, alarm_id: crate::store::AlarmId, error: &str) {
        let outcome = Outcome::skip(
            None,
            Reason::NoMatchingRule,
            format!("the recorded alarm cannot be read: {error}"),
        );
        self.record(alarm_id, "unknown", outcome);
    }

    /// Records the decision to change and, in a dry run, the pretend change; live, the
    /// intent (durably, before anything is sent), then sends and follows the change.
    async fn start_change(
        &self,
        job: &Job,
        id: u64,
        plan: &str,
        change: decide::PlanChange,
        world: Option<i64>,
    ) -> Result<(), Stale> {
        let inner = &self.inner;
        let now = inner.clock.now();
        let live = inner.config.live;
        let kind = if live {
            DecisionKind::Change
        } else {
            DecisionKind::WouldChange
        };
        let detail = if live {
            format!("change {} (rule {:?})", change.describe(), change.rule)
        } else {
            format!(
                "would change {} (rule {:?}; dry run, nothing sent)",
                change.describe(),
                change.rule
            )
        };
        let decision = NewDecision {
            at: now,
            instance_id: Some(id),
            // The plan the instance is on (for a disk change not its size).
            plan: Some(plan.to_owned()),
            kind,
            reason: None,
            rule: Some(change.rule.clone()),
            from_plan: Some(change.from.clone()),
            to_plan: Some(change.to.clone()),
            detail: detail.clone(),
        };
        let new_change =
            super::change::new_change(id, Some(job.alarm_id), &change, live, now, world);
        let notes = self.started_notes(id, &change, &detail, now);
        let change_id = match inner
            .store
            .with_notes(notes)
            .record_decision(job.alarm_id, decision, Some(new_change))
            .await
        {
            Ok(Some(change_id)) => change_id,
            Err(crate::store::StoreError::Stale(why)) => {
                tracing::info!(alarm_id = job.alarm_id, instance = id, %why, "another replica moved the shared state: deciding again");
                return Err(Stale);
            }
            Ok(None) | Err(_) => {
                // Nothing is sent that is not recorded first; the alarm stays pending and
                // is decided again at the next start.
                tracing::error!(
                    alarm_id = job.alarm_id,
                    instance = id,
                    "could not record the intended change: not sending it"
                );
                return Ok(());
            }
        };
        self.note_started(id, now);
        let decision_name = match (live, change.kind) {
            (true, decide::ChangeKind::Plan) => "change_plan",
            (false, decide::ChangeKind::Plan) => "would_change_plan",
            (true, decide::ChangeKind::Disk) => "change_disk",
            (false, decide::ChangeKind::Disk) => "would_change_disk",
        };
        inner
            .metrics
            .decision(if live { "change" } else { "would_change" }, "");
        inner.book.update(id, |state| {
            state.show_decision(LastDecision {
                at: now,
                decision: decision_name,
                reason: None,
                rule: Some(change.rule.clone()),
                detail: detail.clone(),
            });
        });
        if !live {
            tracing::info!(alarm_id = job.alarm_id, instance = id, rule = %change.rule, direction = %change.direction, "would change {}", change.describe());
            self.finish_dry_run(id, change_id, &change, now);
            return Ok(());
        }
        tracing::info!(alarm_id = job.alarm_id, instance = id, rule = %change.rule, direction = %change.direction, "change {}", change.describe());
        self.send_recorded(id, change_id, &change, now);
        Ok(())
    }

    /// A dry run holds the cooldown (or `after_down`) as if the plan had changed `now`.
    pub(super) fn finish_dry_run(
        &self,
        id: u64,
        change_id: crate::store::ChangeId,
        change: &decide::PlanChange,
        now: jiff::Timestamp,
    ) {
        let inner = &self.inner;
        inner.book.update(id, |state| {
            if state
                .in_flight
                .as_ref()
                .is_some_and(|open| open.id == change_id)
            {
                state.in_flight = None;
            }
            state.record_finished(Finished {
                from: change.from.clone(),
                to: change.to.clone(),
                rule: change.rule.clone(),
                result: "completed",
                finished_at: now,
                needs_attention: false,
                dry_run: true,
                direction: change.direction,
                kind: change.kind,
            });
        });
        match change.kind {
            crate::decide::ChangeKind::Plan => {
                inner.metrics.plan_change(change.direction, "dry_run")
            }
            crate::decide::ChangeKind::Disk => inner.metrics.disk_change("dry_run"),
        }
        let detail = "dry run: nothing was sent";
        let notes = self.finished_notes(
            id,
            super::notes::change_of(change),
            "completed",
            Some(detail),
            now,
        );
        let write = inner.store.with_notes(notes).finish_change(
            change_id,
            crate::store::ChangeFinish {
                phase: crate::store::Phase::Completed,
                finished_at: now,
                detail: Some(detail.into()),
                needs_attention: false,
            },
        );
        tokio::spawn(async move {
            if let Err(error) = write.await {
                tracing::error!(change_id, %error, "could not record the end of a dry-run change");
            }
        });
    }
}

/// The row recording `outcome`, decided `at`.
fn skip_row(outcome: &Outcome, at: jiff::Timestamp) -> NewDecision {
    NewDecision {
        at,
        instance_id: outcome.instance_id,
        plan: outcome.plan.clone(),
        kind: DecisionKind::Skip,
        reason: Some(outcome.skip.reason.code().to_owned()),
        rule: outcome.skip.rule.clone(),
        from_plan: None,
        to_plan: None,
        detail: outcome.skip.detail.clone(),
    }
}

/// Without an API key the plan cannot be read.
fn no_api_key(id: u64) -> Outcome {
    Outcome::skip(
        Some(id),
        Reason::PlanUnknown,
        "no CloudAMQP API key, so the instance's plan cannot be read; set cloudamqp.api_key or CLOUDAMQP_API_KEY".into(),
    )
}

/// Without an API key a UUID cannot be mapped to an instance id.
fn uuid_without_api_key(uuid: uuid::Uuid) -> Outcome {
    Outcome::skip(
        None,
        Reason::InstanceUnknown,
        format!(
            "the alarm names instance {uuid} by UUID, and without a CloudAMQP API key it cannot be mapped to an instance id"
        ),
    )
}

/// A UUID that could not be mapped to an instance.
fn unresolved(uuid: uuid::Uuid, error: crate::cloudamqp::ResolveError) -> Outcome {
    let detail = match error {
        crate::cloudamqp::ResolveError::InstanceUnknown { .. } => {
            format!("no instance of this CloudAMQP account has the UUID {uuid}")
        }
        crate::cloudamqp::ResolveError::Api(error) => {
            format!("the UUID {uuid} could not be mapped to an instance: {error}")
        }
    };
    Outcome::skip(None, Reason::InstanceUnknown, detail)
}

/// Whether a `disk_sizes` rule for alarms of `kind` selects the instance with `names`.
fn disk_rule_selects(rules: &crate::rules::RuleSet, kind: &str, names: &InstanceNames<'_>) -> bool {
    rules.disk_rules_for(kind).any(|rule| rule.selects(names))
}

fn view<'a>(
    plan: &'a str,
    last: Option<jiff::Timestamp>,
    names: InstanceNames<'a>,
) -> InstanceView<'a> {
    InstanceView {
        names,
        plan,
        last_change_finished: last,
        disk: 0,
        last_disk_change_finished: None,
    }
}
