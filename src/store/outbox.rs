//! The notification outbox: each event a decision or a change causes is written in the
//! same transaction as that decision or change (`notifications`), with one row per sink it
//! goes to (`deliveries`), so a kill -9 loses none. Once the transaction commits, the
//! writer hands the new deliveries to the sender tasks ([`Store::take_outbox`]); a start
//! hands them the ones still pending ([`Recovered::pending_deliveries`]).
//!
//! The store knows events only as JSON text and sinks only by name: no URL, key or secret
//! ever reaches it.

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::mpsc;

use super::commands::{Command, Failure};
use super::rows::{instance_id_sql, optional_instance_id, timestamp, timestamp_text};
use super::{
    AlarmId, ChangeFinish, ChangeId, NewChange, NewDecision, NewLook, NewScheduleRun, Store,
    StoreError,
};

/// An event to record and deliver to `sinks`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotification {
    /// Unique and stable across retries (the `id` the sinks see).
    pub event_id: String,
    /// `change.completed`, `change.blocked`, ...
    pub kind: String,
    pub instance_id: Option<u64>,
    /// The reason code of a `change.blocked`.
    pub reason: Option<String>,
    pub at: Timestamp,
    /// The event as JSON.
    pub body: String,
    /// The sinks that take this kind of event (by name); never empty.
    pub sinks: Vec<String>,
}

/// One event still to be delivered to one sink.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingDelivery {
    pub event_id: String,
    pub sink: String,
    pub instance_id: Option<u64>,
    /// When the event happened: delivery is given up a day after it.
    pub at: Timestamp,
    pub body: String,
    /// Attempts already made (before a restart, say).
    pub attempts: u32,
}

/// How an attempt to deliver ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Sent,
    /// It will be tried again; why this attempt failed.
    Failed(String),
    /// Given up (refused, too old, or its sink is gone); why.
    Dropped(String),
}

/// An attempt to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    pub event_id: String,
    pub sink: String,
    pub at: Timestamp,
    pub outcome: DeliveryOutcome,
}

/// The last notice of a kind that is held back when repeated (`change.blocked`,
/// `ladder.top`) per instance: what start-up needs to go on holding them back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeRow {
    pub instance_id: u64,
    pub kind: String,
    pub reason: Option<String>,
    pub at: Timestamp,
}

/// The writes that cause notifications, with them in the same transaction.
#[derive(Debug)]
pub struct WithNotes<'a> {
    store: &'a Store,
    notes: Vec<NewNotification>,
}

impl Store {
    /// The write that follows, with `notes` recorded in its transaction (nothing extra
    /// when empty).
    pub fn with_notes(&self, notes: Vec<NewNotification>) -> WithNotes<'_> {
        WithNotes { store: self, notes }
    }

    /// Records events caused by nothing else the store holds (`rules.reload_failed`).
    pub fn record_notifications(
        &self,
        notes: Vec<NewNotification>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        self.submit_unit(Command::Notify(notes))
    }

    /// Records how an attempt to deliver went.
    pub fn record_delivery(
        &self,
        attempt: DeliveryAttempt,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        self.submit_unit(Command::RecordDelivery(attempt))
    }

    /// The deliveries written from now on, each once its transaction has committed. Only
    /// the first call gets them (the daemon's sender tasks); later calls get `None`.
    pub fn take_outbox(&self) -> Option<mpsc::UnboundedReceiver<PendingDelivery>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.inner.shared.outbox.set(tx).ok().map(|()| rx)
    }
}

impl WithNotes<'_> {
    fn wrap(self, command: Command) -> Command {
        if self.notes.is_empty() {
            command
        } else {
            Command::Notifying(Box::new(command), self.notes)
        }
    }

    /// [`Store::record_decision`], with the notes.
    pub fn record_decision(
        self,
        alarm_id: AlarmId,
        decision: NewDecision,
        change: Option<NewChange>,
    ) -> impl Future<Output = Result<Option<ChangeId>, StoreError>> + Send + 'static {
        let store = self.store;
        store.submit(self.wrap(Command::RecordDecision(alarm_id, decision, change)))
    }

    /// [`Store::record_decided_alarm`], with the notes.
    pub fn record_decided_alarm(
        self,
        alarm: super::NewAlarm,
        decision: NewDecision,
    ) -> impl Future<Output = Result<AlarmId, StoreError>> + Send + 'static {
        let store = self.store;
        let done = store.submit(self.wrap(Command::RecordDecidedAlarm(alarm, decision)));
        async move { super::created(done.await?) }
    }

    /// [`Store::finish_change`], with the notes.
    pub fn finish_change(
        self,
        change: ChangeId,
        finish: ChangeFinish,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        let store = self.store;
        store.submit_unit(self.wrap(Command::FinishChange(change, finish)))
    }

    /// [`Store::record_look`], with the notes.
    pub fn record_look(
        self,
        look: NewLook,
        change: Option<NewChange>,
    ) -> impl Future<Output = Result<Option<ChangeId>, StoreError>> + Send + 'static {
        let store = self.store;
        store.submit(self.wrap(Command::RecordLook(look, change)))
    }

    /// [`Store::record_schedule_run`], with the notes.
    pub fn record_schedule_run(
        self,
        run: NewScheduleRun,
        change: Option<NewChange>,
    ) -> impl Future<Output = Result<Option<ChangeId>, StoreError>> + Send + 'static {
        let store = self.store;
        store.submit(self.wrap(Command::RecordScheduleRun(run, change)))
    }
}

/// Inserts the events and their deliveries, in the caller's transaction.
pub(crate) fn insert(conn: &Connection, notes: &[NewNotification]) -> Result<(), Failure> {
    for note in notes {
        if note.sinks.is_empty() {
            return Err(Failure::Refused(format!(
                "event {} goes to no sink",
                note.event_id
            )));
        }
        conn.prepare_cached(
            "INSERT INTO notifications (event_id, kind, instance_id, reason, at, body) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            note.event_id,
            note.kind,
            note.instance_id.map(instance_id_sql).transpose()?,
            note.reason,
            timestamp_text(note.at),
            note.body,
        ])?;
        let id = conn.last_insert_rowid();
        for sink in &note.sinks {
            conn.prepare_cached(
                "INSERT INTO deliveries (notification_id, sink, state) VALUES (?1, ?2, 'pending')",
            )?
            .execute(params![id, sink])?;
        }
    }
    Ok(())
}

/// The deliveries `notes` create, as the sender tasks take them.
pub(crate) fn pending(notes: &[NewNotification]) -> impl Iterator<Item = PendingDelivery> + '_ {
    notes.iter().flat_map(|note| {
        note.sinks.iter().map(|sink| PendingDelivery {
            event_id: note.event_id.clone(),
            sink: sink.clone(),
            instance_id: note.instance_id,
            at: note.at,
            body: note.body.clone(),
            attempts: 0,
        })
    })
}

/// Records an attempt on a pending delivery; one already sent or dropped is left alone
/// (a sender that raced a restart), an unknown one refused.
pub(crate) fn record_attempt(conn: &Connection, attempt: &DeliveryAttempt) -> Result<(), Failure> {
    let (state, error) = match &attempt.outcome {
        DeliveryOutcome::Sent => ("sent", None),
        DeliveryOutcome::Failed(why) => ("pending", Some(why.as_str())),
        DeliveryOutcome::Dropped(why) => ("dropped", Some(why.as_str())),
    };
    let finished = (state != "pending").then(|| timestamp_text(attempt.at));
    let updated = conn
        .prepare_cached(
            "UPDATE deliveries SET state = ?1, attempts = attempts + 1, last_error = ?2, \
                 finished_at = ?3, last_attempt_at = ?4 \
             WHERE state = 'pending' AND sink = ?5 AND notification_id = \
                 (SELECT id FROM notifications WHERE event_id = ?6)",
        )?
        .execute(params![
            state,
            error,
            finished,
            timestamp_text(attempt.at),
            attempt.sink,
            attempt.event_id,
        ])?;
    if updated == 0 {
        let known = conn
            .prepare_cached(
                "SELECT 1 FROM deliveries AS d JOIN notifications AS n ON n.id = d.notification_id \
                 WHERE n.event_id = ?1 AND d.sink = ?2",
            )?
            .query_row(params![attempt.event_id, attempt.sink], |_| Ok(()))
            .optional()?
            .is_some();
        if !known {
            return Err(Failure::Refused(format!(
                "no delivery of event {} to {}",
                attempt.event_id, attempt.sink
            )));
        }
    }
    Ok(())
}

/// Every delivery still pending, in the order the events happened.
pub(crate) fn recover_pending(conn: &Connection) -> rusqlite::Result<Vec<PendingDelivery>> {
    conn.prepare(
        "SELECT n.event_id, d.sink, n.instance_id, n.at, n.body, d.attempts \
           FROM deliveries AS d JOIN notifications AS n ON n.id = d.notification_id \
          WHERE d.state = 'pending' ORDER BY n.id, d.sink",
    )?
    .query_map([], |row| {
        Ok(PendingDelivery {
            event_id: row.get("event_id")?,
            sink: row.get("sink")?,
            instance_id: optional_instance_id(row, "instance_id")?,
            at: timestamp(row, "at")?,
            body: row.get("body")?,
            attempts: row.get("attempts")?,
        })
    })?
    .collect()
}

/// How many deliveries were given up (within retention).
pub(crate) fn count_dropped(conn: &Connection) -> rusqlite::Result<u64> {
    let count: i64 = conn.query_row(
        "SELECT count(*) FROM deliveries WHERE state = 'dropped'",
        [],
        |row| row.get(0),
    )?;
    Ok(count.unsigned_abs())
}

/// The latest `change.blocked` and `ladder.top` of each instance.
pub(crate) fn recover_notices(conn: &Connection) -> rusqlite::Result<Vec<NoticeRow>> {
    conn.prepare(
        "SELECT instance_id, kind, reason, at FROM notifications WHERE id IN ( \
           SELECT max(id) FROM notifications \
            WHERE instance_id IS NOT NULL AND kind IN ('change.blocked', 'ladder.top') \
            GROUP BY instance_id, kind) \
         ORDER BY instance_id, kind",
    )?
    .query_map([], |row| {
        Ok(NoticeRow {
            instance_id: super::rows::instance_id(row, "instance_id")?,
            kind: row.get("kind")?,
            reason: row.get("reason")?,
            at: timestamp(row, "at")?,
        })
    })?
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn note(event_id: &str, sinks: &[&str]) -> NewNotification {
        NewNotification {
            event_id: event_id.into(),
            kind: "change.blocked".into(),
            instance_id: Some(7),
            reason: Some("frozen".into()),
            at: "2026-12-03T07:00:00Z".parse().unwrap(),
            body: format!("{{\"id\":\"{event_id}\"}}"),
            sinks: sinks.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[tokio::test]
    async fn notifications_are_pending_until_sent_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        let mut outbox = store.take_outbox().unwrap();
        assert!(store.take_outbox().is_none(), "one taker");
        store
            .record_notifications(vec![
                note("a", &["webhook", "slack"]),
                note("b", &["slack"]),
            ])
            .await
            .unwrap();
        let mut handed = Vec::new();
        for _ in 0..3 {
            handed.push(outbox.recv().await.unwrap());
        }
        let keys: Vec<_> = handed
            .iter()
            .map(|d| (d.event_id.as_str(), d.sink.as_str()))
            .collect();
        assert_eq!(keys, [("a", "webhook"), ("a", "slack"), ("b", "slack")]);
        let at: Timestamp = "2026-12-03T07:00:01Z".parse().unwrap();
        let attempt = |id: &str, sink: &str, outcome| DeliveryAttempt {
            event_id: id.into(),
            sink: sink.into(),
            at,
            outcome,
        };
        store
            .record_delivery(attempt("a", "webhook", DeliveryOutcome::Sent))
            .await
            .unwrap();
        store
            .record_delivery(attempt("a", "slack", DeliveryOutcome::Failed("503".into())))
            .await
            .unwrap();
        store
            .record_delivery(attempt(
                "b",
                "slack",
                DeliveryOutcome::Dropped("400".into()),
            ))
            .await
            .unwrap();
        // Sent is final: a late attempt changes nothing; an unknown one is refused.
        store
            .record_delivery(attempt("a", "webhook", DeliveryOutcome::Failed("x".into())))
            .await
            .unwrap();
        assert!(
            store
                .record_delivery(attempt("zzz", "webhook", DeliveryOutcome::Sent))
                .await
                .is_err()
        );
        store.close().await;

        let (store, recovered) = Store::open(dir.path()).unwrap();
        let pending: Vec<_> = recovered
            .pending_deliveries
            .iter()
            .map(|d| (d.event_id.as_str(), d.sink.as_str(), d.attempts))
            .collect();
        assert_eq!(pending, [("a", "slack", 1)]);
        assert_eq!(recovered.dropped_deliveries, 1);
        assert_eq!(
            recovered.notices,
            [NoticeRow {
                instance_id: 7,
                kind: "change.blocked".into(),
                reason: Some("frozen".into()),
                at: "2026-12-03T07:00:00Z".parse().unwrap(),
            }]
        );
        store.close().await;
    }

    #[tokio::test]
    async fn notes_are_written_with_their_write_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        let mut outbox = store.take_outbox().unwrap();
        // A decision for an alarm that does not exist is refused: its note goes with it.
        let decision = NewDecision {
            at: "2026-12-03T07:00:00Z".parse().unwrap(),
            instance_id: Some(7),
            plan: None,
            kind: super::super::DecisionKind::Skip,
            reason: Some("frozen".into()),
            rule: None,
            from_plan: None,
            to_plan: None,
            detail: "frozen".into(),
        };
        let refused = store
            .with_notes(vec![note("c", &["webhook"])])
            .record_decision(999, decision, None)
            .await;
        assert!(refused.is_err());
        assert!(outbox.try_recv().is_err(), "nothing handed out");
        // Empty sinks are refused too.
        assert!(
            store
                .record_notifications(vec![note("d", &[])])
                .await
                .is_err()
        );
        store.close().await;
        let (store, recovered) = Store::open(dir.path()).unwrap();
        assert!(recovered.pending_deliveries.is_empty());
        store.close().await;
    }
}
