//! A replica among others on one PostgreSQL database: what the executor does besides
//! deciding (nothing of this runs on SQLite).
//!
//! - **No decision on stale memory.** Before a decision (and a look, and a schedule's
//!   opening) the replica asks the database for the shared state's version
//!   ([`Executor::sync`]); when another replica moved it, the book and the pauses are
//!   reloaded from one snapshot first. The change a decision starts is recorded only if
//!   the version is still the one the decision read (else the store answers `Stale`, and
//!   the alarm is decided again on reloaded state).
//! - **Takeover.** Every few seconds the replica claims what replicas that died left: open
//!   changes past their lease (tracked to their end, never sent again unless certainly
//!   unsent) and alarms accepted but not decided within a lease.
//! - **Duties.** Looks, schedules and retention are one replica's at a time: the one
//!   holding the duty's session lock in the database (`Store::duty`).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Executor, Job};
use crate::store::StoreError;

/// How often a replica looks for work others left: well within the 15 s the contract
/// allows past the lease.
pub const CLAIM_EVERY: Duration = Duration::from_secs(5);

impl Executor {
    /// Whether this executor shares its state with other replicas.
    pub(super) fn shared(&self) -> bool {
        self.inner.store.replica().is_some()
    }

    /// Makes the book the database's when another replica moved the shared state, and
    /// returns the version the book now rests on (`None` on SQLite, at once). An error:
    /// the database cannot confirm the state, so nothing may be decided now.
    pub(super) async fn sync(&self) -> Result<Option<i64>, StoreError> {
        let inner = &self.inner;
        if !self.shared() {
            return Ok(None);
        }
        let version = inner.store.world_version().await?;
        if version == inner.book.world() {
            return Ok(version);
        }
        // One reload at a time: a slower, older snapshot must not overwrite a newer one.
        let _turn = inner.sync_turn.lock().await;
        let version = inner.store.world_version().await?;
        if version == inner.book.world() {
            return Ok(version);
        }
        self.reload_from_store().await
    }

    /// [`Self::sync`] for readers (`/status`): the book as the database has it now.
    pub async fn catch_up(&self) -> Result<(), StoreError> {
        self.sync().await.map(drop)
    }

    /// Reloads the book and the pauses from one snapshot of the shared state, whatever
    /// its version (a look round does, for the alarms other replicas received).
    pub(super) async fn reload_from_store(&self) -> Result<Option<i64>, StoreError> {
        let inner = &self.inner;
        let recovered = inner.store.reload().await?;
        inner.pauses.replace(
            recovered
                .pauses
                .iter()
                .cloned()
                .map(crate::server::admin::pause_from_row)
                .collect(),
        );
        inner.book.resync(&recovered);
        inner
            .metrics
            .changes_in_flight(inner.book.in_flight_count());
        tracing::debug!(world = ?recovered.world, "shared state reloaded");
        Ok(recovered.world)
    }

    /// Claims, every [`CLAIM_EVERY`], the changes and alarms replicas that died left,
    /// and takes them on, until `stop`.
    pub async fn run_takeovers(self, stop: CancellationToken) {
        if !self.shared() {
            return;
        }
        let mut more = false;
        loop {
            // A round that took as many as one claim may goes on at once: a replica that
            // died holding many changes is taken over in one round, not one batch a round.
            if !more {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    () = tokio::time::sleep(CLAIM_EVERY) => {}
                }
            } else if stop.is_cancelled() {
                return;
            }
            more = false;
            let claimed = match self.inner.store.claim().await {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::debug!(%error, "no takeover this round");
                    continue;
                }
            };
            if claimed.changes.is_empty() && claimed.alarms.is_empty() {
                continue;
            }
            // Alarms only while this replica has room to decide them: a backlog claimed
            // faster than decided would outlive its claims (not renewed) and be claimed
            // again elsewhere while still waiting here.
            more = claimed.more_changes
                || (claimed.more_alarms
                    && self.inner.jobs.len() < self.inner.config.max_concurrent.max(1));
            // The claimed changes are this replica's now (their leases renewed): they are
            // taken on even when the reload fails, since each reads CloudAMQP before acting
            // and every decision reloads first anyway.
            if let Err(error) = self.reload_from_store().await {
                tracing::warn!(%error, "cannot reload the shared state before a takeover; taking the work on all the same");
            }
            for change in claimed.changes {
                self.spawn_resume(change);
            }
            for pending in claimed.alarms {
                self.take_pending(pending);
            }
        }
    }

    /// Decides an alarm found undecided (at a start, or taken over from a replica).
    pub(super) fn take_pending(&self, pending: crate::store::PendingAlarm) {
        let inner = &self.inner;
        let now = inner.clock.now();
        match crate::alarm::parse(pending.body.as_bytes()) {
            Ok(alarm) if super::is_stale(now.duration_since(pending.received_at)) => {
                tracing::warn!(
                    alarm_id = pending.id,
                    received_at = %pending.received_at,
                    "an alarm accepted long ago and never decided is skipped as stale"
                );
                self.record_stale(pending.id, &alarm.kind, pending.received_at);
            }
            Ok(alarm) => {
                tracing::info!(alarm_id = pending.id, "deciding an alarm accepted earlier");
                let job = Job {
                    alarm_id: pending.id,
                    alarm,
                    received_at: pending.received_at,
                };
                let executor = self.clone();
                inner
                    .jobs
                    .spawn(async move { executor.decide_alarm(job).await });
            }
            Err(error) => {
                tracing::error!(alarm_id = pending.id, %error, "a recorded alarm no longer parses");
                self.record_unreadable(pending.id, &error.to_string());
            }
        }
    }

    /// Whether this replica does `duty` now (always on SQLite).
    pub(super) fn on_duty(&self, duty: crate::store::Duty) -> bool {
        self.inner.store.on_duty(duty)
    }
}
