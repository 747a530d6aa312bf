//! A plan change, live: send it once, follow it until CloudAMQP has really finished it,
//! record how it ended. After a restart: follow it again, never send it again.

use std::sync::Arc;

use jiff::Timestamp;

use crate::cloudamqp::{
    ApiError, DiskChange, PlanChange, PutProgress, TrackEvent, TrackOutcome, track_change,
    track_disk_change,
};
use crate::decide::ChangeKind;
use crate::store::{ChangeFinish, ChangeId, ChangeRow, InstanceRow, Phase, StoreError};

use super::Executor;
use super::state::{Finished, InFlight, phase_name};

/// How long a stop waits for the store to record that a change was not sent.
const ON_STOP_WRITE: std::time::Duration = std::time::Duration::from_secs(2);

/// Why a change a stop left unsent must not be sent at this start, if it must not: it
/// answered a spike more than [`STALE_AFTER`](super::STALE_AFTER) ago, the daemon now runs
/// as a dry run, or the rule that decided it is no longer in force.
pub(super) fn why_not_resend(
    row: &ChangeRow,
    live: bool,
    rule_in_force: bool,
    now: Timestamp,
) -> Option<String> {
    let not_sent = "a stop interrupted this change before CloudAMQP had it; not sent";
    if super::is_stale(now.duration_since(row.intended_at)) {
        return Some(format!(
            "{not_sent}: decided more than {} ago, the load it answered is over",
            crate::duration::display(super::STALE_AFTER)
        ));
    }
    if !live {
        return Some(format!("{not_sent}: the daemon now runs as a dry run"));
    }
    if !rule_in_force {
        return Some(format!(
            "{not_sent}: rule {:?} is no longer in the rules in force",
            row.rule
        ));
    }
    None
}

impl Executor {
    /// A change whose intent (`change_id`) is on disk: in flight from `now` on, sent and
    /// followed in the background.
    pub(super) fn send_recorded(
        &self,
        id: u64,
        change_id: ChangeId,
        change: &crate::decide::PlanChange,
        now: Timestamp,
    ) {
        let inner = &self.inner;
        let in_flight = InFlight {
            id: change_id,
            from: change.from.clone(),
            to: change.to.clone(),
            rule: change.rule.clone(),
            phase: "intended",
            started_at: now,
            cooldown: change.cooldown,
            direction: change.direction,
            kind: change.kind,
        };
        inner
            .book
            .update(id, |state| state.in_flight = Some(in_flight.clone()));
        inner
            .metrics
            .changes_in_flight(inner.book.in_flight_count());
        self.spawn_submit(id, in_flight, false);
    }

    /// Sends the change and follows it, in the background; stops at shutdown (the store
    /// holds what is needed to resume).
    ///
    /// `resend`: the change was marked unsent by a stop; the mark is cleared (durably)
    /// before anything is sent, so that a crash from then on leaves it only watched, and
    /// it is sent only if the instance is still as it was decided on.
    pub(super) fn spawn_submit(&self, id: u64, change: InFlight, resend: bool) {
        let executor = self.clone();
        let progress = Arc::new(self.put_progress(change.id));
        let seen = Arc::clone(&progress);
        let (change_id, store) = (change.id, self.inner.store.clone());
        // A stop before CloudAMQP could have the change (and before the PUT got its final
        // answer, which is then the change's to record): say so, and the next start may
        // send it instead of only watching for it. Bounded, so a stalled disk cannot hold
        // the stop; unmarked, the change is only watched, the safe side.
        let on_stop = async move {
            if !seen.never_sent() {
                return;
            }
            let written = tokio::time::timeout(ON_STOP_WRITE, store.mark_unsent(change_id, true))
                .await
                .unwrap_or_else(|_| Err(StoreError::Write("no answer in time".into())));
            if let Err(error) = written {
                tracing::warn!(instance = id, %error, "could not record that the change was not sent: the next start only watches for it");
            }
        };
        self.run_change(
            (id, change_id),
            async move {
                if resend && !executor.ready_to_resend(id, &change).await {
                    let why = "a stop interrupted this change before CloudAMQP had it, and it was not \
                               sent again: the instance is not as it was decided on, or could not be read";
                    executor.confirm_then_follow(id, change, why).await;
                    return;
                }
                executor.submit_and_follow(id, change, &progress).await;
            },
            on_stop,
        );
    }

    /// Before sending again a change a stop left unsent: clears the mark (a crash from here
    /// on must leave it only watched), then reads the instance. Sends only onto the plan it
    /// was decided on, ready; anything else (someone changed it meanwhile, a change is
    /// running, the read fails) is left to `confirm_then_follow`, which never sends.
    async fn ready_to_resend(&self, id: u64, change: &InFlight) -> bool {
        let inner = &self.inner;
        if let Err(error) = inner.store.mark_unsent(change.id, false).await {
            tracing::warn!(instance = id, %error, "cannot record that the change is being sent: watching for it instead");
            return false;
        }
        let Some(api) = &inner.api else {
            return false;
        };
        match self
            .still_where_it_was(api, id, change, std::time::Duration::MAX)
            .await
        {
            Ok(true) => true,
            Ok(false) => {
                tracing::warn!(instance = id, decided_on = %change.from, "the instance changed while the daemon was stopped (or is busy): the change is not sent again");
                false
            }
            Err(error) => {
                tracing::warn!(instance = id, %error, "cannot read the instance before sending the change again: watching instead");
                false
            }
        }
    }

    /// Whether CloudAMQP shows the instance where `change` leaves from, settled: on its
    /// plan and ready, or (a disk change) every node configured on its extra disk.
    async fn still_where_it_was(
        &self,
        api: &super::Api,
        id: u64,
        change: &InFlight,
        patience: std::time::Duration,
    ) -> Result<bool, ApiError> {
        Ok(match change.kind {
            ChangeKind::Plan => {
                let instance = api.client.instance_within(id, patience).await?;
                instance.plan == change.from && instance.ready
            }
            ChangeKind::Disk => {
                let nodes = api.client.nodes_within(id, patience).await?;
                let size = crate::cloudamqp::extra_disk(&nodes).unwrap_or(0);
                nodes.iter().all(|node| node.configured) && size.to_string() == change.from
            }
        })
    }

    /// Resumes a change the previous run left in flight.
    pub(super) fn spawn_resume(&self, row: ChangeRow) {
        let id = row.instance_id;
        if row.dry_run {
            // A dry run sends nothing, so there is nothing to follow: one left open by a stop
            // between its two writes ends as it would have, when it was decided.
            let change = crate::decide::PlanChange {
                from: row.from_plan,
                to: row.to_plan,
                rule: row.rule,
                cooldown: row.cooldown,
                direction: row.direction,
                kind: row.kind,
            };
            self.finish_dry_run(id, row.id, &change, row.intended_at);
            self.inner
                .metrics
                .changes_in_flight(self.inner.book.in_flight_count());
            return;
        }
        let change = InFlight::from(&row);
        if row.unsent {
            let inner = &self.inner;
            let rules = inner.rules.snapshot();
            let why_not = why_not_resend(
                &row,
                inner.config.live,
                match row.direction {
                    // A step down is the [scale_down] section's.
                    crate::decide::Direction::Down => rules.rules.scale_down().is_some(),
                    crate::decide::Direction::Up => {
                        rules.rules.rules().iter().any(|rule| rule.name == row.rule)
                    }
                },
                inner.clock.now(),
            );
            if let Some(detail) = why_not {
                tracing::warn!(instance = id, from = %change.from, to = %change.to, %detail, "a change a stop interrupted before CloudAMQP had it is not sent");
                let executor = self.clone();
                self.run_change(
                    (id, row.id),
                    async move {
                        executor
                            .finish(id, change, Phase::Failed, Some(detail), true)
                            .await;
                    },
                    async {},
                );
            } else {
                tracing::info!(instance = id, from = %change.from, to = %change.to, "sending a change a stop interrupted before CloudAMQP had it");
                self.spawn_submit(id, change, true);
            }
            return;
        }
        let executor = self.clone();
        let submitted = row.phase == Phase::Submitted;
        tracing::info!(instance = id, from = %change.from, to = %change.to, "resuming a change left in flight");
        self.run_change((id, row.id), async move {
            if submitted {
                let accepted_at = change.started_at;
                executor.follow(id, change, accepted_at).await;
            } else {
                let why = "the daemon stopped before CloudAMQP's answer to this change was recorded, \
                           and CloudAMQP shows no change";
                executor.confirm_then_follow(id, change, why).await;
            }
        }, async {});
    }

    /// The progress of a change's PUT; a replica's every attempt first makes sure it
    /// holds the change's lease for the whole request.
    fn put_progress(&self, change_id: ChangeId) -> PutProgress {
        if !self.shared() {
            return PutProgress::default();
        }
        let store = self.inner.store.clone();
        let needed = self.inner.config.lease_for_put;
        PutProgress::gated(Arc::new(move || {
            let held = store.hold_for(change_id, needed);
            Box::pin(async move { held.await.map_err(|error| error.to_string()) })
        }))
    }

    /// Runs `work` on change `change_id` of instance `id` in the background until it
    /// ends, the daemon stops, or (replicas) this replica loses the change's lease; at a
    /// stop, `work` is dropped where it is and `on_stop` runs (before the store closes).
    fn run_change(
        &self,
        (id, change_id): (u64, ChangeId),
        work: impl Future<Output = ()> + Send + 'static,
        on_stop: impl Future<Output = ()> + Send + 'static,
    ) {
        let stop = self.inner.stop_changes.clone();
        let store = self.inner.store.clone();
        let losses = store.lease_losses_at_grant(change_id);
        let lost = async move {
            if store.replica().is_none() {
                return std::future::pending().await;
            }
            while store.lease_losses(change_id) == losses {
                tokio::time::sleep(LEASE_CHECK).await;
            }
        };
        self.inner.changes.spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {
                    tracing::info!(instance = id, "stopping: the change in flight is resumed at the next start");
                    on_stop.await;
                }
                () = lost => {
                    tracing::warn!(instance = id, change = change_id, "this replica lost the change's lease: it stops working on it (the replica holding it finishes it)");
                }
                () = work => {}
            }
        });
    }

    async fn submit_and_follow(&self, id: u64, change: InFlight, progress: &PutProgress) {
        let Some(api) = &self.inner.api else {
            self.finish(
                id,
                change,
                Phase::Failed,
                Some("no CloudAMQP client to send the change with".into()),
                true,
            )
            .await;
            return;
        };
        let sent = match change.kind {
            ChangeKind::Plan => {
                api.client
                    .change_plan_reporting(id, &change.to, progress)
                    .await
            }
            ChangeKind::Disk => match change.to.parse() {
                Ok(gb) => api.client.change_disk_reporting(id, gb, progress).await,
                Err(_) => Err(ApiError::BadRequest {
                    message: format!("{:?} is not a disk size", change.to),
                }),
            },
        };
        match sent {
            Ok(()) => {
                let accepted_at = self.inner.clock.now();
                self.follow(id, change, accepted_at).await;
            }
            Err(error) => self.put_failed(id, change, error).await,
        }
    }

    /// The PUT did not succeed. A refusal is final and never retried blindly; a failure of
    /// unknown fate (no answer) may still have started the change, so look first.
    async fn put_failed(&self, id: u64, change: InFlight, error: ApiError) {
        let what = match change.kind {
            ChangeKind::Plan => "plan change",
            ChangeKind::Disk => "disk resize",
        };
        if matches!(
            error.root(),
            ApiError::Transient { .. } | ApiError::RateLimited { .. }
        ) {
            tracing::warn!(instance = id, %error, "the change got no clear answer: watching whether it started");
            let why = format!(
                "CloudAMQP gave no clear answer to the {what} ({error}) and shows no change"
            );
            self.confirm_then_follow(id, change, &why).await;
            return;
        }
        let detail = match &error {
            ApiError::ChangeRefused(deadline) => format!(
                "CloudAMQP refused the {what} every time it was tried ({deadline}); nothing was started"
            ),
            ApiError::InstanceBusy { message } => format!(
                "CloudAMQP says the instance is busy ({message}): another change is running; not retried"
            ),
            other => format!("CloudAMQP did not accept the {what}: {other}"),
        };
        self.finish(id, change, Phase::Failed, Some(detail), true)
            .await;
    }

    /// For a change whose PUT may or may not have gone out (no answer, or a restart between
    /// recording the intent and recording the answer): it is never sent again; CloudAMQP's
    /// view decides. A change that shows within `unconfirmed_grace` is followed; one that
    /// never shows is recorded as failed because `why`.
    async fn confirm_then_follow(&self, id: u64, change: InFlight, why: &str) {
        let inner = &self.inner;
        let Some(api) = &inner.api else {
            tracing::warn!(
                instance = id,
                "a change left in flight cannot be followed without a CloudAMQP API key"
            );
            return;
        };
        let deadline = crate::clock::add(inner.clock.now(), inner.config.unconfirmed_grace);
        loop {
            // Retried only until the grace ends, so the verdict comes on time.
            let patience = crate::clock::between(inner.clock.now(), deadline);
            match self.still_where_it_was(api, id, &change, patience).await {
                Ok(false) => {
                    let accepted_at = change.started_at;
                    self.follow(id, change, accepted_at).await;
                    return;
                }
                Ok(true) => {}
                Err(ApiError::NotFound { .. }) => {
                    self.finish(
                        id,
                        change,
                        Phase::Failed,
                        Some(format!("CloudAMQP has no instance {id} any more")),
                        true,
                    )
                    .await;
                    return;
                }
                Err(error) => {
                    tracing::warn!(instance = id, %error, "cannot read the instance to confirm a change")
                }
            }
            if inner.clock.now() >= deadline {
                let detail = format!("{why}: it was not sent again");
                self.finish(id, change, Phase::Failed, Some(detail), true)
                    .await;
                return;
            }
            inner.clock.sleep(inner.config.track.poll_interval).await;
        }
    }

    /// Follows an accepted change to its end and records the end.
    async fn follow(&self, id: u64, change: InFlight, accepted_at: Timestamp) {
        let inner = &self.inner;
        let Some(api) = &inner.api else { return };
        if change.phase != "tracking" {
            if let Err(error) = inner.store.mark_submitted(change.id, accepted_at).await {
                // Tracking goes on; a restart would follow the change from "intended".
                tracing::error!(instance = id, %error, "could not record that CloudAMQP accepted the change");
            }
            inner.book.update(id, |state| {
                if let Some(in_flight) = state.in_flight.as_mut() {
                    in_flight.phase = "tracking";
                    in_flight.started_at = accepted_at;
                }
            });
        }
        let on_event = |event: &TrackEvent| match event {
            TrackEvent::PollError { error, consecutive } => {
                tracing::warn!(instance = id, %error, consecutive, "polling the change failed");
            }
            other => tracing::debug!(instance = id, event = ?other, "change progress"),
        };
        let outcome = match change.kind {
            ChangeKind::Plan => {
                let plan_change = PlanChange {
                    instance_id: id,
                    from_plan: change.from.clone(),
                    to_plan: change.to.clone(),
                    accepted_at,
                };
                track_change(&api.client, &plan_change, inner.config.track, on_event).await
            }
            ChangeKind::Disk => {
                let disk_change = DiskChange {
                    instance_id: id,
                    from_gb: change.from.parse().unwrap_or(0),
                    to_gb: change.to.parse().unwrap_or(0),
                    accepted_at,
                };
                track_disk_change(&api.client, &disk_change, inner.config.track, on_event).await
            }
        };
        match outcome {
            TrackOutcome::Completed { .. } => {
                self.finish(id, change, Phase::Completed, None, false).await
            }
            TrackOutcome::TimedOut { .. } => {
                let detail = format!(
                    "not finished within cloudamqp.change_timeout ({}) of being accepted: a human must look",
                    crate::duration::display(inner.config.track.change_timeout)
                );
                self.finish(id, change, Phase::TimedOut, Some(detail), true)
                    .await;
            }
            TrackOutcome::Failed { reason, .. } => {
                self.finish(id, change, Phase::Failed, Some(reason), true)
                    .await
            }
        }
    }

    /// Records how a change ended; the instance's cooldown starts now.
    async fn finish(
        &self,
        id: u64,
        change: InFlight,
        phase: Phase,
        detail: Option<String>,
        needs_attention: bool,
    ) {
        let inner = &self.inner;
        let at = inner.clock.now();
        let result = phase_name(phase);
        let finish = ChangeFinish {
            phase,
            finished_at: at,
            detail,
            needs_attention,
        };
        let notes = self.finished_notes(
            id,
            super::notes::in_flight_of(&change),
            result,
            finish.detail.as_deref(),
            at,
        );
        let recorded = inner
            .store
            .with_notes(notes.clone())
            .finish_change(change.id, finish.clone())
            .await;
        if let Err(StoreError::LeaseLost(_)) = recorded {
            // Written first, so a replica that lost the change says nothing of its end.
            tracing::warn!(
                instance = id,
                change = change.id,
                "this replica no longer holds the change: the replica holding it records its end"
            );
            return;
        }
        if needs_attention {
            tracing::error!(
                instance = id, from = %change.from, to = %change.to, rule = %change.rule, result,
                detail = finish.detail.as_deref().unwrap_or(""),
                "{} change {result}: needs a human", change.kind.as_str()
            );
        } else {
            tracing::info!(instance = id, from = %change.from, to = %change.to, rule = %change.rule, "{} change completed", change.kind.as_str());
        }
        let change_id = change.id;
        // Counted before `/status` shows the change over, so that whoever sees it over
        // finds it counted.
        match change.kind {
            ChangeKind::Plan => inner.metrics.plan_change(change.direction, result),
            ChangeKind::Disk => inner.metrics.disk_change(result),
        }
        inner.book.update(id, |state| {
            state.in_flight = None;
            if phase == Phase::Completed && change.kind == ChangeKind::Plan {
                state.plan = Some(change.to.clone());
            }
            state.record_finished(Finished {
                from: change.from.clone(),
                to: change.to.clone(),
                rule: change.rule.clone(),
                result,
                finished_at: at,
                needs_attention,
                dry_run: false,
                direction: change.direction,
                kind: change.kind,
            });
        });
        if phase == Phase::Completed && change.kind == ChangeKind::Plan {
            // The plan the instance is on now, kept for the next start: its rules and
            // cooldowns are judged on it (a failed write is only a stale cache, and the
            // start also reads the completed change itself).
            let row = InstanceRow {
                id,
                name: None,
                providerid: None,
                plan: Some(change.to.clone()),
                updated_at: at,
            };
            if let Err(error) = inner.store.upsert_instance(row).await {
                tracing::warn!(instance = id, %error, "could not record the instance's new plan");
            }
        }
        inner
            .metrics
            .changes_in_flight(inner.book.in_flight_count());
        if let Err(error) = recorded {
            self.record_finish_later(id, change_id, (finish, notes), error)
                .await;
        }
    }

    /// The store could not take down how a change ended (disk full, read-only): the change
    /// is over (the cooldown holds in memory) but still open on disk. Tries again every
    /// [`RECORD_RETRY`] until the store writes again, so the end is recorded without a
    /// restart. Stops at shutdown (the next start follows the change again, without
    /// sending it) and on a write the store refuses while healthy (nothing to wait for).
    async fn record_finish_later(
        &self,
        id: u64,
        change_id: ChangeId,
        (finish, notes): (ChangeFinish, Vec<crate::store::NewNotification>),
        mut error: StoreError,
    ) {
        let inner = &self.inner;
        tracing::error!(
            instance = id,
            %error,
            "could not record the end of the change; trying again until the state store writes"
        );
        loop {
            if matches!(error, StoreError::Closed | StoreError::LeaseLost(_)) {
                return;
            }
            let store_failing = !inner.store.healthy();
            inner.clock.sleep(RECORD_RETRY).await;
            let write = inner
                .store
                .with_notes(notes.clone())
                .finish_change(change_id, finish.clone());
            match write.await {
                Ok(()) => {
                    tracing::info!(instance = id, "the end of the change is recorded");
                    return;
                }
                Err(refused) if !store_failing && inner.store.healthy() => {
                    tracing::error!(instance = id, error = %refused, "the state store refuses the end of the change; it is checked again at the next start");
                    return;
                }
                Err(again) => error = again,
            }
        }
    }
}

/// The change's row, recorded (phase `intended`) before anything is sent; `alarm` caused
/// it (`None`: a look or a schedule did).
pub(super) fn new_change(
    id: u64,
    alarm: Option<crate::store::AlarmId>,
    change: &crate::decide::PlanChange,
    live: bool,
    now: Timestamp,
    world: Option<i64>,
) -> crate::store::NewChange {
    crate::store::NewChange {
        instance_id: id,
        alarm_id: alarm,
        direction: change.direction,
        kind: change.kind,
        from_plan: change.from.clone(),
        to_plan: change.to.clone(),
        rule: change.rule.clone(),
        cooldown: change.cooldown,
        dry_run: !live,
        intended_at: now,
        world,
    }
}

/// How often a replica's change task checks that it still holds the change's lease.
const LEASE_CHECK: std::time::Duration = std::time::Duration::from_millis(250);

/// How often the end of a change is offered again to a store that could not write it.
const RECORD_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    fn unsent(intended_at: &str) -> ChangeRow {
        ChangeRow {
            unsent: true,
            ..ChangeRow::example(intended_at)
        }
    }

    #[test]
    fn an_unsent_change_is_sent_only_fresh_live_and_under_a_rule_in_force() {
        let now: Timestamp = "2026-11-26T18:00:00Z".parse().unwrap();
        let fresh = unsent("2026-11-26T17:30:00Z");
        assert_eq!(why_not_resend(&fresh, true, true, now), None);
        let why = |row: &ChangeRow, live, rule| why_not_resend(row, live, rule, now).unwrap();
        assert!(why(&unsent("2026-11-26T16:59:59Z"), true, true).contains("more than 1h ago"));
        assert!(why(&fresh, false, true).contains("dry run"));
        assert!(why(&fresh, true, false).contains("\"memory-high\" is no longer"));
        // Exactly an hour is not yet stale.
        assert_eq!(
            why_not_resend(&unsent("2026-11-26T17:00:00Z"), true, true, now),
            None
        );
    }
}
