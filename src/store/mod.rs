//! Durable state in `state.dir`: the alarm journal, every decision, plan changes with their
//! phases. SQLite (bundled), so operators can query the history with standard tools.
//!
//! INTERFACE DRAFT: the bodies are being written on the `store` branch.

use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;

/// Row id of an alarm in the journal.
pub type AlarmId = i64;
/// Row id of a plan change.
pub type ChangeId = i64;

/// The durable store. Cheap to clone; all clones share one writer thread.
#[derive(Debug, Clone)]
pub struct Store {}

/// What the previous run left behind, read once at start-up.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Alarms accepted (202) but never decided, oldest first.
    pub pending_alarms: Vec<PendingAlarm>,
    /// Changes in phase `intended` or `submitted`: tracked again, never re-sent.
    pub open_changes: Vec<ChangeRow>,
    /// The latest finished change of each instance (cooldowns derive from these).
    pub last_finished: Vec<ChangeRow>,
    /// The latest decision of each instance.
    pub last_decisions: Vec<DecisionRow>,
    /// Every instance seen: name, UUID, last known plan.
    pub instances: Vec<InstanceRow>,
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

/// What was decided about one alarm.
#[derive(Debug, Clone)]
pub struct NewDecision {
    pub alarm_id: AlarmId,
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
    pub alarm_id: AlarmId,
    pub from_plan: String,
    pub to_plan: String,
    pub rule: String,
    /// The cooldown it holds the instance to once finished.
    pub cooldown: Duration,
    pub dry_run: bool,
    pub intended_at: Timestamp,
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
    pub dry_run: bool,
    pub phase: Phase,
    pub intended_at: Timestamp,
    pub accepted_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub detail: Option<String>,
    pub needs_attention: bool,
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

/// The store could not do what was asked; the message is fit for logs and a 503.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the state store in {dir}: {reason}")]
    Open { dir: String, reason: String },
    #[error("cannot write to the state store: {0}")]
    Write(String),
    #[error("the state store is closed")]
    Closed,
}

impl Store {
    /// Opens (creating if missing) `dir/autoscaler.sqlite3`, migrates it, reads what the
    /// previous run left, and starts the writer thread.
    pub fn open(_dir: &Path) -> Result<(Store, Recovered), StoreError> {
        todo!()
    }

    /// Journals an alarm; resolves once it is on disk (fsync'd, group-committed).
    pub fn record_alarm(
        &self,
        _alarm: NewAlarm,
    ) -> impl Future<Output = Result<AlarmId, StoreError>> + Send + 'static {
        async { todo!() }
    }

    /// Records a decision and marks its alarm decided; with `change`, records the change in
    /// phase `Intended` in the same transaction and returns its id. The write is queued
    /// before this returns: dropping the future does not cancel it.
    pub fn record_decision(
        &self,
        _decision: NewDecision,
        _change: Option<NewChange>,
    ) -> impl Future<Output = Result<Option<ChangeId>, StoreError>> + Send + 'static {
        async { todo!() }
    }

    /// CloudAMQP accepted the PUT.
    pub fn mark_submitted(
        &self,
        _change: ChangeId,
        _accepted_at: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        async { todo!() }
    }

    /// A change ended (completed, failed or timed out).
    pub fn finish_change(
        &self,
        _change: ChangeId,
        _finish: ChangeFinish,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        async { todo!() }
    }

    /// Remembers an instance's name, UUID and last known plan.
    pub fn upsert_instance(
        &self,
        _instance: InstanceRow,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        async { todo!() }
    }

    /// Whether the last write succeeded (for `/readyz`).
    pub fn healthy(&self) -> bool {
        todo!()
    }

    /// Flushes what is queued and stops the writer thread.
    pub async fn close(self) {
        todo!()
    }
}
