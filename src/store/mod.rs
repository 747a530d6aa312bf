//! Durable state in `state.dir`: the alarm journal, every decision, plan changes with their
//! phases. SQLite (bundled), so operators can query the history with standard tools (see
//! [`schema`] for the tables, views and example queries).
//!
//! Writes go through one writer thread that group-commits (`writer.rs`): a webhook's 202
//! waits for its alarm's fsync, and concurrent alarms share one. Every public write method
//! queues its command before it returns the future, so dropping the future (a client that
//! hung up) never cancels a write. The store never logs bodies or SQL parameters.

mod commands;
mod history_parts;
mod history_source;
mod lifecycle;
mod open;
mod outbox;
pub mod pg;
mod prune;
pub mod read;
mod read_text;
mod recover;
mod replica;
pub(crate) mod replica_jobs;
pub mod replies;
mod rows;
mod runs;
pub mod schema;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::oneshot;

pub use crate::decide::Direction;

use commands::{Command, Done};
use lifecycle::Inner;
use writer::Job;

pub use history_source::HistorySource;
pub use outbox::{
    DeliveryAttempt, DeliveryOutcome, NewNotification, NoticeRow, PendingDelivery, WithNotes,
};
pub use prune::{Prune, Pruned};
pub use read::{
    EventKind, HistoryEvent, HistoryQuery, PlanTimeline, Reader, TimelineAlarm, TimelineChange,
};
pub use replica::{
    Duty, Replica, ReplicaOptions, ReplicaRow, lease_for_put, new_replica_id, put_outlasts_takeover,
};
pub use replica_jobs::Claimed;
pub use schema::SCHEMA_VERSION;

/// The database file inside `state.dir`.
pub const DB_FILE_NAME: &str = "autoscaler.sqlite3";
/// Held (an advisory lock) while a store is open: two daemons on one state directory would
/// both act on the same alarms.
pub const LOCK_FILE_NAME: &str = "autoscaler.lock";

/// Row id of an alarm in the journal.
pub type AlarmId = i64;
/// Row id of a plan change.
pub type ChangeId = i64;

/// The durable store. Cheap to clone; all clones share one writer thread.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// Counters of the writer since open, for tests, benchmarks and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Write commands handled, successful or not.
    pub commands: u64,
    /// Groups of commands taken off the queue together.
    pub batches: u64,
    /// Transactions committed (each an fsync): one per batch, one per command retried
    /// alone after a batch failed.
    pub commits: u64,
    /// Commands answered with an error.
    pub failed: u64,
    /// The largest batch so far.
    pub largest_batch: u64,
}

/// A simulated storage failure, so tests can drive the "cannot record: 503" path even as
/// root (where `chmod` stops nothing). It applies to the writer's connection only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The database may not grow (`PRAGMA max_page_count`): a write that needs a new page
    /// fails with SQLITE_FULL, as on a full disk.
    DiskFull,
    /// Every write fails with SQLITE_READONLY (`PRAGMA query_only`).
    ReadOnly,
}

/// What the previous run left behind, read once at start-up.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Alarms accepted (202) but never decided, oldest first.
    pub pending_alarms: Vec<PendingAlarm>,
    /// Changes in phase `intended` or `submitted`: tracked again, never re-sent.
    pub open_changes: Vec<ChangeRow>,
    /// The latest finished change of each instance (cooldowns derive from these).
    pub last_finished: Vec<ChangeRow>,
    /// The latest finished plan change of each instance (its plan and floor derive from
    /// these; a disk change says nothing of the plan).
    pub last_finished_plans: Vec<ChangeRow>,
    /// The latest decision of each instance.
    pub last_decisions: Vec<DecisionRow>,
    /// Every instance seen: name, UUID, last known plan.
    pub instances: Vec<InstanceRow>,
    /// Each instance's baseline (the floor's base), where one is known.
    pub baselines: Vec<BaselineRow>,
    /// When each instance's last upward and last downward plan change finished.
    pub last_by_direction: Vec<(u64, Direction, Timestamp)>,
    /// When each instance's last disk change finished, and the extra disk (GB) its last
    /// completed one (not a dry run) reached, if any.
    pub last_disk: Vec<(u64, Timestamp, Option<u32>)>,
    /// Upward changes that completed for real since each instance's baseline was set,
    /// oldest first: what a step down takes back.
    pub ups: Vec<ChangeRow>,
    /// When the daemon last received an alarm (not a resolve) for each instance.
    pub last_alarms: Vec<(u64, Timestamp)>,
    /// Per-node memory limits seen on each instance and plan.
    pub capacities: Vec<CapacityRow>,
    /// The latest look of each instance.
    pub last_looks: Vec<LookRow>,
    /// When each instance's last changes started (at most
    /// [`crate::rules::MAX_CHANGES_COUNT`] each), oldest first.
    pub change_starts: Vec<(u64, Timestamp)>,
    /// The latest opening of each schedule that made a change on each instance.
    pub schedule_runs: Vec<ScheduleRunRow>,
    /// Pauses not ended early, soonest to end first; the expired ones are the caller's to
    /// drop (the store has no clock).
    pub pauses: Vec<PauseRow>,
    /// Notifications not yet delivered, in the order the events happened.
    pub pending_deliveries: Vec<PendingDelivery>,
    /// Deliveries given up, within retention.
    pub dropped_deliveries: u64,
    /// Each instance's latest `change.blocked` and `ladder.top`.
    pub notices: Vec<NoticeRow>,
    /// The shared state's version this was read at (PostgreSQL); `None` on SQLite.
    pub world: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct PendingAlarm {
    pub id: AlarmId,
    pub received_at: Timestamp,
    /// The body as stored (credentials redacted); re-parsed with `alarm::parse`.
    pub body: String,
}

/// An alarm to journal.
#[derive(Debug, Clone)]
pub struct NewAlarm {
    pub received_at: Timestamp,
    pub remote_addr: Option<String>,
    /// The raw body with credential-like fields redacted, as JSON text.
    pub body: String,
    pub kind: String,
    pub value: Option<f64>,
    /// The instance as the alarm named it (integer id or UUID), if it did.
    pub instance: Option<String>,
    pub resolved: bool,
    pub message: Option<String>,
    pub triggered_at: Option<String>,
}

/// What was decided about one alarm (which alarm is the store call's to say).
#[derive(Debug, Clone)]
pub struct NewDecision {
    pub at: Timestamp,
    pub instance_id: Option<u64>,
    /// The plan the instance was on when decided, if known.
    pub plan: Option<String>,
    pub kind: DecisionKind,
    /// The reason code of a skip.
    pub reason: Option<String>,
    pub rule: Option<String>,
    pub from_plan: Option<String>,
    pub to_plan: Option<String>,
    /// One human sentence.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionKind {
    /// A plan change, sent for real.
    Change,
    /// A plan change a dry run would have made.
    WouldChange,
    Skip,
}

/// A plan change about to be made (or, in a dry run, pretended).
#[derive(Debug, Clone)]
pub struct NewChange {
    pub instance_id: u64,
    /// The alarm that caused it; `None` for a step down (a look caused it).
    pub alarm_id: Option<AlarmId>,
    pub direction: Direction,
    /// A plan change, or a disk change whose `from_plan`/`to_plan` are sizes in GB.
    pub kind: crate::decide::ChangeKind,
    pub from_plan: String,
    pub to_plan: String,
    pub rule: String,
    /// The cooldown it holds the instance to once finished.
    pub cooldown: Duration,
    pub dry_run: bool,
    pub intended_at: Timestamp,
    /// The version of the shared state (PostgreSQL's `world`) the decision rested on: the
    /// change is recorded only if no replica changed that state since (else
    /// [`StoreError::Stale`]). `None` on SQLite, where this daemon is the only writer.
    pub world: Option<i64>,
}

/// The phases of a change: `Intended` → `Submitted` → `Completed` | `Failed` | `TimedOut`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Recorded before the PUT; whether the PUT went out is unknown after a crash.
    Intended,
    /// CloudAMQP accepted the PUT at `accepted_at`; being tracked.
    Submitted,
    Completed,
    Failed,
    TimedOut,
}

/// How a change ended.
#[derive(Debug, Clone)]
pub struct ChangeFinish {
    pub phase: Phase,
    pub finished_at: Timestamp,
    pub detail: Option<String>,
    pub needs_attention: bool,
}

#[derive(Debug, Clone)]
pub struct ChangeRow {
    pub id: ChangeId,
    pub instance_id: u64,
    pub alarm_id: Option<AlarmId>,
    pub from_plan: String,
    pub to_plan: String,
    pub rule: String,
    pub cooldown: Duration,
    pub direction: Direction,
    /// A plan change, or a disk change whose `from_plan`/`to_plan` are sizes in GB.
    pub kind: crate::decide::ChangeKind,
    pub dry_run: bool,
    pub phase: Phase,
    pub intended_at: Timestamp,
    pub accepted_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub detail: Option<String>,
    pub needs_attention: bool,
    /// An `intended` change a graceful stop interrupted while CloudAMQP could not have it
    /// yet: the next start sends it (any other `intended` change is only watched).
    pub unsent: bool,
}

#[cfg(test)]
impl ChangeRow {
    /// An `intended` change of instance 7, bunny-1 → hare-1 by `memory-high` (30 min),
    /// intended at `intended_at`: for unit tests to adjust.
    pub(crate) fn example(intended_at: &str) -> Self {
        Self {
            id: 1,
            instance_id: 7,
            alarm_id: Some(1),
            from_plan: "bunny-1".into(),
            to_plan: "hare-1".into(),
            rule: "memory-high".into(),
            cooldown: Duration::from_secs(1800),
            direction: Direction::Up,
            kind: crate::decide::ChangeKind::Plan,
            dry_run: false,
            phase: Phase::Intended,
            intended_at: intended_at.parse().unwrap(),
            accepted_at: None,
            finished_at: None,
            detail: None,
            needs_attention: false,
            unsent: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct DecisionRow {
    pub alarm_id: AlarmId,
    pub at: Timestamp,
    pub instance_id: u64,
    pub kind: DecisionKind,
    pub reason: Option<String>,
    pub rule: Option<String>,
    pub from_plan: Option<String>,
    pub to_plan: Option<String>,
    pub detail: String,
}

#[derive(Debug, Clone)]
pub struct InstanceRow {
    pub id: u64,
    pub name: Option<String>,
    pub providerid: Option<String>,
    pub plan: Option<String>,
    pub updated_at: Timestamp,
}

/// An instance's baseline: the plan it was on before the daemon's first upward change,
/// moved by any plan change the daemon did not make. The floor a step down stops at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaselineRow {
    pub instance_id: u64,
    pub plan: String,
    /// Since when: upward changes finished before it are not the daemon's to take back.
    pub since: Timestamp,
}

/// The per-node memory limit seen on an instance while it was on a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapacityRow {
    pub instance_id: u64,
    pub plan: String,
    /// Bytes per node (the smallest node's `mem_limit`).
    pub mem_limit: u64,
    pub nodes: u32,
    pub seen_at: Timestamp,
}

/// One look at an instance above its floor, about to be recorded.
#[derive(Debug, Clone)]
pub struct NewLook {
    pub instance_id: u64,
    pub at: Timestamp,
    /// The plan it was on, and the one a step down would go to.
    pub plan: String,
    pub to_plan: Option<String>,
    pub passed: bool,
    /// The reason code when it did not lead to a step down.
    pub reason: Option<String>,
    pub detail: String,
    pub projected_memory_percent: Option<f64>,
    pub kind: DecisionKind,
}

/// What one opening of a schedule's window did on an instance, about to be recorded.
#[derive(Debug, Clone)]
pub struct NewScheduleRun {
    pub schedule: String,
    pub instance_id: u64,
    pub opened_at: Timestamp,
    pub at: Timestamp,
    pub plan: String,
    pub to_plan: String,
    pub kind: DecisionKind,
    pub reason: Option<String>,
    pub detail: String,
}

/// The latest opening of a schedule that made a change on an instance.
#[derive(Debug, Clone)]
pub struct ScheduleRunRow {
    pub schedule: String,
    pub instance_id: u64,
    pub opened_at: Timestamp,
}

/// A recorded look.
#[derive(Debug, Clone)]
pub struct LookRow {
    pub instance_id: u64,
    pub at: Timestamp,
    pub plan: String,
    pub to_plan: Option<String>,
    pub passed: bool,
    pub reason: Option<String>,
    pub detail: String,
    pub projected_memory_percent: Option<f64>,
}

/// A pause set through the admin API, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PauseRow {
    /// The `pause_id` (a UUID).
    pub id: String,
    pub created_at: Timestamp,
    pub until: Timestamp,
    pub directions: crate::decide::Directions,
    /// Selectors as given; empty means every instance.
    pub instances: Vec<String>,
    pub reason: Option<String>,
}

/// The store could not do what was asked; the message is fit for logs and a 503.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the state store in {dir}: {reason}")]
    Open { dir: String, reason: String },
    #[error("cannot write to the state store: {0}")]
    Write(String),
    #[error("the state store is closed")]
    Closed,
    /// A reader found no database: no daemon has run with this `state.dir` yet.
    #[error(
        "no state store at {0}: no daemon has run with this state.dir yet (check state.dir or --config)"
    )]
    Missing(String),
    /// A read failed after the database opened.
    #[error("cannot read the state store: {0}")]
    Read(String),
    /// Replicas sharing PostgreSQL: another replica changed the state a decision rested
    /// on (or started a change on the instance) since this one read it; nothing was
    /// written: read again and decide again.
    #[error("the shared state moved under this decision: {0}")]
    Stale(String),
    /// Replicas sharing PostgreSQL: this replica no longer holds the change (its lease
    /// ended, or a survivor took it over); nothing was written and it must stop.
    #[error("this replica no longer holds change {0}")]
    LeaseLost(ChangeId),
    /// Replicas sharing PostgreSQL: this replica may not join the others (a different
    /// mode).
    #[error("{0}")]
    Refused(String),
}

impl Store {
    /// Opens (creating if missing) `dir/autoscaler.sqlite3`, migrates it, reads what the
    /// previous run left, and starts the writer thread.
    pub fn open(dir: &Path) -> Result<(Store, Recovered), StoreError> {
        let (inner, recovered) = Inner::start(dir)?;
        let store = Store {
            inner: Arc::new(inner),
        };
        Ok((store, recovered))
    }

    /// Journals an alarm; resolves once it is on disk (fsync'd, group-committed).
    pub fn record_alarm(
        &self,
        alarm: NewAlarm,
    ) -> impl Future<Output = Result<AlarmId, StoreError>> + Send + 'static {
        let done = self.submit(Command::RecordAlarm(alarm));
        async move { created(done.await?) }
    }

    /// Journals an alarm that was decided on arrival together with its decision, in one
    /// transaction; resolves with the alarm's id once both are on disk.
    pub fn record_decided_alarm(
        &self,
        alarm: NewAlarm,
        decision: NewDecision,
    ) -> impl Future<Output = Result<AlarmId, StoreError>> + Send + 'static {
        self.with_notes(Vec::new())
            .record_decided_alarm(alarm, decision)
    }

    /// Records the decision on alarm `alarm_id`; with `change`, records the change in phase
    /// `Intended` in the same transaction and returns its id. The write is queued before
    /// this returns: dropping the future does not cancel it.
    pub fn record_decision(
        &self,
        alarm_id: AlarmId,
        decision: NewDecision,
        change: Option<NewChange>,
    ) -> impl Future<Output = Result<Option<ChangeId>, StoreError>> + Send + 'static {
        self.with_notes(Vec::new())
            .record_decision(alarm_id, decision, change)
    }

    /// CloudAMQP accepted the PUT.
    ///
    /// Only an `Intended` change can become `Submitted`; anything else is refused with
    /// `StoreError::Write` and changes nothing.
    pub fn mark_submitted(
        &self,
        change: ChangeId,
        accepted_at: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        self.submit_unit(Command::MarkSubmitted(change, accepted_at))
    }

    /// `unsent: true`: a stop interrupted this `intended` change while CloudAMQP could not
    /// have it yet (nothing sent, or every attempt refused outright), so the next start may
    /// send it. `false`, written before it is sent again: from then on it may have reached
    /// CloudAMQP, and a crash must leave it only watched.
    ///
    /// Only an `Intended` change can be marked; anything else is refused with
    /// `StoreError::Write` and changes nothing.
    pub fn mark_unsent(
        &self,
        change: ChangeId,
        unsent: bool,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        self.submit_unit(Command::MarkUnsent(change, unsent))
    }

    /// A change ended (completed, failed or timed out).
    ///
    /// Only an `Intended` or `Submitted` change can finish, and only into a final phase;
    /// anything else is refused with `StoreError::Write` and changes nothing.
    pub fn finish_change(
        &self,
        change: ChangeId,
        finish: ChangeFinish,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        self.with_notes(Vec::new()).finish_change(change, finish)
    }

    /// Remembers an instance's name, UUID and last known plan.
    ///
    /// A field given as `None` keeps the stored value, so a caller that knows only the
    /// plan does not erase the name.
    pub fn upsert_instance(
        &self,
        instance: InstanceRow,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        self.submit_unit(Command::UpsertInstance(instance))
    }

    /// Records a look; with `change` (a step down, or a dry run's pretend one), records the
    /// change in phase `Intended` in the same transaction and returns its id.
    pub fn record_look(
        &self,
        look: NewLook,
        change: Option<NewChange>,
    ) -> impl Future<Output = Result<Option<ChangeId>, StoreError>> + Send + 'static {
        self.with_notes(Vec::new()).record_look(look, change)
    }

    /// Records what an opening of a schedule did; with `change`, records the change in
    /// phase `Intended` in the same transaction and returns its id.
    pub fn record_schedule_run(
        &self,
        run: NewScheduleRun,
        change: Option<NewChange>,
    ) -> impl Future<Output = Result<Option<ChangeId>, StoreError>> + Send + 'static {
        self.with_notes(Vec::new()).record_schedule_run(run, change)
    }

    /// Sets an instance's baseline (creating its row if needed).
    pub fn set_baseline(
        &self,
        baseline: BaselineRow,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        self.submit_unit(Command::SetBaseline(baseline))
    }

    /// Remembers the memory limit seen on an instance and plan (the newest wins).
    pub fn record_capacity(
        &self,
        capacity: CapacityRow,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        self.submit_unit(Command::RecordCapacity(capacity))
    }

    /// Records a pause; resolves once it is on disk.
    pub fn add_pause(
        &self,
        pause: PauseRow,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        self.submit_unit(Command::AddPause(pause))
    }

    /// Ends pause `id` early at `at`; resolves with whether a pause not yet ended had that
    /// id, once the end is on disk.
    pub fn end_pause(
        &self,
        id: String,
        at: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send + 'static {
        let done = self.submit(Command::EndPauses(Some(id), at));
        async move { Ok(done.await?.is_some_and(|ended| ended > 0)) }
    }

    /// Ends every pause not yet ended at `at`; resolves with how many it ended.
    pub fn end_all_pauses(
        &self,
        at: Timestamp,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send + 'static {
        let done = self.submit(Command::EndPauses(None, at));
        async move { Ok(done.await?.map_or(0, |ended| ended.unsigned_abs())) }
    }

    /// Whether the last write succeeded (for `/readyz`). False once closed.
    pub fn healthy(&self) -> bool {
        self.inner.shared.healthy.load(Ordering::Relaxed)
    }

    /// Flushes what is queued and stops the writer thread.
    ///
    /// Other clones get `StoreError::Closed` from then on. Returns once every queued write
    /// is answered and the database file is closed.
    pub async fn close(self) {
        if self.replica().is_some() {
            self.leave().await;
        }
        self.inner.stop_accepting();
        self.inner.stopped().await;
        self.inner.join_writer();
    }

    /// The writer's counters since open.
    pub fn stats(&self) -> StoreStats {
        self.inner.shared.stats()
    }

    /// The database file, for logs and for operators (`sqlite3 <path>`).
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Simulates a storage failure (`Some`) or lifts it (`None`) on the writer's
    /// connection, after the writes queued before it. For tests of the 503 path.
    pub fn inject_fault(
        &self,
        fault: Option<Fault>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let queued = self.inner.send(Job::Fault(fault, reply));
        async move {
            queued?;
            answer.await.unwrap_or(Err(StoreError::Closed))
        }
    }

    /// Queues the command now (not when the future is first polled) and returns a future
    /// of its answer.
    fn submit(
        &self,
        command: Command,
    ) -> impl Future<Output = Result<Done, StoreError>> + Send + 'static {
        let (reply, answer) = replies::Reply::new();
        let queued = self.inner.send(Job::Write(command, reply));
        async move {
            queued?;
            // The reply is dropped unanswered only if the writer thread died.
            answer.await.unwrap_or(Err(StoreError::Closed))
        }
    }

    /// [`submit`](Self::submit) for a command that answers nothing but whether it was done.
    fn submit_unit(
        &self,
        command: Command,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        let done = self.submit(command);
        async move { done.await.map(drop) }
    }
}

/// The id of the row a command created; a command that creates one always reports it.
fn created(done: Done) -> Result<i64, StoreError> {
    done.ok_or_else(|| StoreError::Write("the store reported no row id".into()))
}
