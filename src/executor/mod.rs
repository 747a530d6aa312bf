//! The executor: from a recorded alarm to a decision, and from a decision to a plan change
//! followed to its end.
//!
//! One change at a time per instance (single flight, through the instance's gate), any
//! number of instances in parallel. Everything it decides is recorded in the store; what it
//! knows right now lives in the [`StateBook`], which `/status` shows.

mod capacity;
mod change;
mod decision;
mod floor;
mod guardrails;
mod looks;
mod notes;
mod replica;
mod schedules;
pub mod state;

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::alarm::Alarm;
use crate::clock::SharedClock;
use crate::cloudamqp::{CatalogueCache, CloudAmqpClient, InstanceResolver, TrackOptions};
use crate::instance::InstanceRef;
use crate::live_rules::LiveRules;
use crate::metrics::Metrics;
use crate::store::{AlarmId, Recovered, Store};
pub use decision::QuickDecision;
pub use replica::CLAIM_EVERY;
pub use state::StateBook;

/// An alarm found undecided at a start (a crash and a long outage, or a decision whose write
/// failed) is decided only if it was accepted at most this long ago; older, it is skipped as
/// `stale`: it says nothing about the load now, and a lasting condition alarms again.
pub const STALE_AFTER: Duration = Duration::from_secs(60 * 60);

fn is_stale(age: jiff::SignedDuration) -> bool {
    age.is_positive() && age.unsigned_abs() > STALE_AFTER
}

/// One recorded alarm waiting for its decision.
#[derive(Debug, Clone)]
pub struct Job {
    pub alarm_id: AlarmId,
    pub alarm: Alarm,
    pub received_at: Timestamp,
}

/// How the executor behaves.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// Send plan changes for real; otherwise record what would have been done.
    pub live: bool,
    /// The instance of alarms that name none.
    pub default_instance: Option<InstanceRef>,
    pub track: TrackOptions,
    /// After a restart, how long a change recorded as intended may show no sign of
    /// happening before it is taken as never sent.
    pub unconfirmed_grace: Duration,
    /// How many alarms are decided at once, over all instances.
    pub max_concurrent: usize,
    /// The notification sinks' subscriptions (what the outbox gets).
    pub notifier: crate::notify::Notifier,
    /// Replicas: how much of a change's lease must be left before each attempt of its
    /// PUT (the whole request, with a margin).
    pub lease_for_put: Duration,
}

/// The CloudAMQP side: the client and what is cached from it.
#[derive(Debug, Clone)]
pub struct Api {
    pub client: CloudAmqpClient,
    pub resolver: Arc<InstanceResolver>,
    pub catalogue: Arc<CatalogueCache>,
}

impl Api {
    pub fn new(client: CloudAmqpClient) -> Self {
        Self {
            resolver: Arc::new(InstanceResolver::new(client.clone())),
            catalogue: Arc::new(CatalogueCache::new(
                client.clone(),
                crate::cloudamqp::CATALOGUE_TTL,
            )),
            client,
        }
    }
}

/// Decides alarms and carries out plan changes. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    rules: Arc<LiveRules>,
    store: Store,
    api: Option<Api>,
    config: ExecutorConfig,
    book: StateBook,
    /// The pauses in force (the admin API writes them to the store, then here).
    pauses: crate::guard::PauseBook,
    metrics: Metrics,
    clock: SharedClock,
    /// Alarms being decided.
    jobs: TaskTracker,
    /// Changes being sent and followed; cancelled at shutdown (they resume at the next
    /// start from what the store recorded).
    changes: TaskTracker,
    stop_changes: CancellationToken,
    /// Changes up under a budget are checked one at a time ([`Executor::budget_turn`]).
    budget_turn: tokio::sync::Mutex<()>,
    /// Reloads of the shared state, one at a time ([`Executor::sync`]).
    sync_turn: tokio::sync::Mutex<()>,
    /// Replicas: decisions retried because the shared state moved under them, one at a
    /// time ([`Executor::decide_alarm`]).
    change_turn: tokio::sync::Mutex<()>,
}

impl Executor {
    pub fn new(
        rules: Arc<LiveRules>,
        store: Store,
        api: Option<Api>,
        config: ExecutorConfig,
        metrics: Metrics,
        clock: SharedClock,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                rules,
                store,
                api,
                config,
                book: StateBook::default(),
                pauses: crate::guard::PauseBook::default(),
                metrics,
                clock,
                jobs: TaskTracker::new(),
                changes: TaskTracker::new(),
                stop_changes: CancellationToken::new(),
                budget_turn: tokio::sync::Mutex::new(()),
                sync_turn: tokio::sync::Mutex::new(()),
                change_turn: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// What is known about every instance.
    pub fn book(&self) -> &StateBook {
        &self.inner.book
    }

    /// The pauses in force, consulted before every change.
    pub fn pauses(&self) -> &crate::guard::PauseBook {
        &self.inner.pauses
    }

    /// Whether plan changes are sent for real.
    pub fn live(&self) -> bool {
        self.inner.config.live
    }

    /// Picks up where the previous run stopped: restores the state, follows the changes
    /// that were in flight (never sending them again) and decides the alarms that were
    /// accepted but not decided.
    pub fn resume(&self, recovered: Recovered) {
        let inner = &self.inner;
        inner.book.restore(&recovered);
        // Replicas: what is open or undecided may be another replica's, alive; it is
        // claimed once its lease or claim ends ([`Executor::run_takeovers`]).
        if !self.shared() {
            for change in recovered.open_changes {
                self.spawn_resume(change);
            }
            for pending in recovered.pending_alarms {
                self.take_pending(pending);
            }
        }
        inner
            .metrics
            .changes_in_flight(inner.book.in_flight_count());
    }

    /// Decides the jobs from `queue` until `stop`, at most `max_concurrent` at a time.
    pub async fn run(self, mut queue: mpsc::Receiver<Job>, stop: CancellationToken) {
        let slots = Arc::new(Semaphore::new(self.inner.config.max_concurrent.max(1)));
        loop {
            // A free slot first, then a job: while every slot is busy, alarms stay in the
            // queue, so a full queue is what the webhook sees (and answers 503).
            let slot = tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                slot = Arc::clone(&slots).acquire_owned() => match slot { Ok(slot) => slot, Err(_) => break },
            };
            let job = tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                job = queue.recv() => match job { Some(job) => job, None => break },
            };
            self.inner.metrics.queue_depth(queue.len());
            let executor = self.clone();
            self.inner.jobs.spawn(async move {
                executor.decide_alarm(job).await;
                drop(slot);
            });
        }
        // Alarms still queued are recorded as pending: the next start decides them.
        queue.close();
    }

    /// Lets alarms being decided finish (up to `grace`), then stops following changes;
    /// both resume from the store at the next start.
    pub async fn shutdown(&self, grace: Duration) {
        let inner = &self.inner;
        inner.jobs.close();
        if tokio::time::timeout(grace, inner.jobs.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "alarms still being decided at shutdown: they are decided again at the next start"
            );
        }
        inner.stop_changes.cancel();
        inner.changes.close();
        inner.changes.wait().await;
    }
}
