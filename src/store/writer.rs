//! The group-commit writer: one OS thread owns the write connection.
//!
//! A commit costs an fsync (milliseconds on real disks) whatever it holds, so the writer
//! takes the first queued command, drains whatever else queued up meanwhile (while the
//! previous fsync ran, typically), runs them all in one transaction and commits once. Under
//! load the batch grows by itself; alone, a command commits at once.
//!
//! A write the store refuses (an invalid transition) rolls the batch back; that command is
//! answered with the refusal and the rest written again as one transaction. When the
//! database itself fails (disk full, read-only, I/O error), the batch is rolled back and
//! each command retried in its own transaction: only the ones that cannot be written get an
//! error, and once space returns the next command simply succeeds. While
//! unhealthy and idle, the writer probes with a write of an alarm's largest size, so
//! `/readyz` turns green again even when no traffic comes (a load balancer sends none to
//! an unready daemon).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use super::StoreError;
use super::commands::{Command, Done, Failure};
use super::replies::{Deliveries, Reply};

/// The most commands one transaction holds: bounds the latency a command waits behind
/// others and the work lost to a rollback, while still turning ~100 fsyncs into one.
pub(crate) const MAX_BATCH: usize = 512;

/// How often an unhealthy, idle writer checks whether the disk takes writes again.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// The probe's size: the largest body the webhook accepts, so a successful probe means an
/// alarm fits.
const PROBE_BYTES: i64 = 64 * 1024;

/// A message to the writer thread.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "`Fault` is a rare test message; boxing every write to shrink it would cost an \
              allocation per alarm"
)]
pub(crate) enum Job {
    Write(Command, Reply),
    /// Simulates a broken disk for tests (see `Store::inject_fault`); run between batches.
    Fault(
        Option<super::Fault>,
        oneshot::Sender<Result<(), StoreError>>,
    ),
    /// What only a replica sharing PostgreSQL does; the SQLite writer answers at once.
    Replica(super::replica_jobs::ReplicaJob),
}

/// State the writer shares with every `Store` clone.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Whether the last write reached the disk.
    pub(crate) healthy: AtomicBool,
    pub(crate) commands: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) commits: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) largest_batch: AtomicU64,
    /// Where committed deliveries go (see `Store::take_outbox`); unset, they wait in the
    /// store for the next start.
    pub(crate) outbox: OnceLock<tokio::sync::mpsc::UnboundedSender<super::PendingDelivery>>,
    /// How many times this replica lost each change's lease (PostgreSQL only): a task
    /// working on a change stops once the count moves past what it was when the task
    /// started. A count, not a flag: a change lost and then claimed back (its lease ran out
    /// while the database was away, and no one else took it) gets a new task, which must
    /// run, while the old one must still stop.
    pub(crate) lost: std::sync::Mutex<std::collections::HashMap<super::ChangeId, u64>>,
    /// For each change this replica claimed, `lost`'s count when it claimed it: work
    /// started on a claim compares with that, so a loss between the claim and the start of
    /// the work is not missed.
    pub(crate) claimed_at: std::sync::Mutex<std::collections::HashMap<super::ChangeId, u64>>,
}

impl Shared {
    /// This replica no longer holds `change` (PostgreSQL only).
    pub(crate) fn note_lost(&self, change: super::ChangeId) {
        *self
            .lost
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(change)
            .or_default() += 1;
    }

    /// `change` is this replica's by a claim, from now on.
    pub(crate) fn note_claimed(&self, change: super::ChangeId) {
        let losses = self.losses(change);
        self.claimed_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(change, losses);
    }

    /// The loss count work on `change` starts from: as of its last claim, or none (a
    /// change this replica opened).
    pub(crate) fn losses_at_grant(&self, change: super::ChangeId) -> u64 {
        self.claimed_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&change)
            .copied()
            .unwrap_or(0)
    }

    /// How many times this replica lost `change`'s lease.
    pub(crate) fn losses(&self, change: super::ChangeId) -> u64 {
        self.lost
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&change)
            .copied()
            .unwrap_or(0)
    }

    /// Hands the deliveries a committed command created to the sender tasks.
    pub(crate) fn hand_out(&self, command: &Command) {
        let notes = command.notes();
        if notes.is_empty() {
            return;
        }
        if let Some(outbox) = self.outbox.get() {
            for delivery in super::outbox::pending(notes) {
                // The senders are gone only at shutdown: the row waits for the next start.
                let _ = outbox.send(delivery);
            }
        }
    }

    pub(crate) fn stats(&self) -> super::StoreStats {
        super::StoreStats {
            commands: self.commands.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            largest_batch: self.largest_batch.load(Ordering::Relaxed),
        }
    }
}

/// Runs until every sender is gone, then returns having answered everything queued.
pub(crate) fn run(mut conn: Connection, jobs: Receiver<Job>, shared: Arc<Shared>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // Blocks for the first job; `None` means every `Store` is closed or dropped and the
    // queue is empty: time to stop.
    loop {
        let first = if shared.healthy.load(Ordering::Relaxed) {
            jobs.recv().ok()
        } else {
            match jobs.recv_timeout(PROBE_INTERVAL) {
                Ok(job) => Some(job),
                Err(RecvTimeoutError::Timeout) => {
                    probe(&mut conn, &shared);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => None,
            }
        };
        let Some(first) = first else {
            break;
        };
        let mut pending_fault = None;
        match first {
            Job::Write(command, reply) => batch.push((command, reply)),
            Job::Fault(fault, reply) => pending_fault = Some((fault, reply)),
            Job::Replica(job) => job.answer_alone(),
        }
        while pending_fault.is_none() && batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(Job::Write(command, reply)) => batch.push((command, reply)),
                // Applied after this batch, so it affects only what was queued after it.
                Ok(Job::Fault(fault, reply)) => pending_fault = Some((fault, reply)),
                Ok(Job::Replica(job)) => job.answer_alone(),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        if !batch.is_empty() {
            write_batch(&mut conn, &mut batch, &shared);
        }
        if let Some((fault, reply)) = pending_fault {
            let _ = reply.send(apply_fault(&conn, fault));
        }
    }
    tracing::debug!("state store writer stopped");
}

fn write_batch(conn: &mut Connection, batch: &mut Vec<(Command, Reply)>, shared: &Shared) {
    // Answers go out when this is dropped, each waiting thread woken once.
    let mut answers = Deliveries::default();
    let size = batch.len() as u64;
    shared.commands.fetch_add(size, Ordering::Relaxed);
    shared.batches.fetch_add(1, Ordering::Relaxed);
    shared.largest_batch.fetch_max(size, Ordering::Relaxed);
    loop {
        match try_batch(conn, batch) {
            Ok(results) => {
                shared.commits.fetch_add(1, Ordering::Relaxed);
                shared.healthy.store(true, Ordering::Relaxed);
                // Replies go out only now, after the commit's fsync: an id means "on disk".
                for ((command, reply), done) in batch.drain(..).zip(results) {
                    shared.hand_out(&command);
                    answers.push(reply, Ok(done));
                }
                return;
            }
            // A write the store refuses is that command's own fault: answer it, and write
            // the rest of the batch again, still as one transaction.
            Err((Some(index), Failure::Refused(reason))) => {
                let (command, reply) = batch.remove(index);
                answers.push(
                    reply,
                    settle(&command, Err(Failure::Refused(reason)), shared),
                );
                if batch.is_empty() {
                    return;
                }
            }
            Err((_, err)) => {
                write_one_by_one(conn, batch, shared, &err, &mut answers);
                return;
            }
        }
    }
}

/// The database failed (or the commit was refused): each command in its own transaction, so
/// only the ones that cannot be written fail.
fn write_one_by_one(
    conn: &mut Connection,
    batch: &mut Vec<(Command, Reply)>,
    shared: &Shared,
    err: &Failure,
    answers: &mut Deliveries,
) {
    if batch.len() > 1 {
        tracing::warn!(
            error = %err,
            commands = batch.len(),
            "state store batch failed; retrying each command in its own transaction"
        );
    }
    for (command, reply) in batch.drain(..) {
        let result = write_alone(conn, &command);
        match &result {
            Ok(_) => {
                shared.commits.fetch_add(1, Ordering::Relaxed);
                shared.healthy.store(true, Ordering::Relaxed);
                shared.hand_out(&command);
            }
            Err(Failure::Storage(_)) => shared.healthy.store(false, Ordering::Relaxed),
            Err(Failure::Refused(_)) => {}
        }
        answers.push(reply, settle(&command, result, shared));
        // Each answered when its own transaction ends, not after the whole batch's retries.
        answers.flush();
    }
}

/// Logs a failed command (its name and the error, never its parameters) and turns the
/// result into the caller's.
fn settle(
    command: &Command,
    result: Result<Done, Failure>,
    shared: &Shared,
) -> Result<Done, StoreError> {
    result.map_err(|failure| {
        shared.failed.fetch_add(1, Ordering::Relaxed);
        match &failure {
            Failure::Storage(err) => {
                tracing::error!(command = command.name(), error = %err, "state store write failed");
            }
            Failure::Refused(reason) => {
                tracing::warn!(command = command.name(), %reason, "state store refused a write");
            }
        }
        failure.into_store_error()
    })
}

/// All commands in one transaction, committed once. On failure nothing of the batch is on
/// disk (dropping the transaction rolls it back), and the error says which command failed
/// (`None`: beginning or committing the transaction). No savepoint per command: two
/// statements more for every alarm, only to spare a rare refusal one re-run of the batch.
fn try_batch(
    conn: &mut Connection,
    batch: &[(Command, Reply)],
) -> Result<Vec<Done>, (Option<usize>, Failure)> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|err| (None, err.into()))?;
    let mut results = Vec::with_capacity(batch.len());
    for (index, (command, _)) in batch.iter().enumerate() {
        results.push(
            command
                .execute(&tx)
                .map_err(|failure| (Some(index), failure))?,
        );
    }
    // `commit` is the fsync (synchronous=FULL).
    tx.commit().map_err(|err| (None, err.into()))?;
    Ok(results)
}

/// One command in its own transaction: the fallback after a batch failed.
fn write_alone(conn: &mut Connection, command: &Command) -> Result<Done, Failure> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let done = command.execute(&tx)?;
    tx.commit()?;
    Ok(done)
}

/// Writes (and deletes, in the same transaction) `PROBE_BYTES`; healthy again if it commits.
fn probe(conn: &mut Connection, shared: &Shared) {
    match probe_write(conn) {
        Ok(()) => {
            shared.healthy.store(true, Ordering::Relaxed);
            tracing::info!("state store takes writes again");
        }
        Err(err) => tracing::debug!(error = %err, "state store still cannot write"),
    }
}

fn probe_write(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.prepare_cached("INSERT INTO write_probe (filler) VALUES (zeroblob(?1))")?
        .execute([PROBE_BYTES])?;
    tx.prepare_cached("DELETE FROM write_probe")?.execute([])?;
    tx.commit()
}

fn apply_fault(conn: &Connection, fault: Option<super::Fault>) -> Result<(), StoreError> {
    let result = match fault {
        Some(super::Fault::DiskFull) => conn
            .pragma_query_value(None, "page_count", |row| row.get::<_, i64>(0))
            .and_then(|pages| conn.pragma_update(None, "max_page_count", pages)),
        Some(super::Fault::ReadOnly) => conn.pragma_update(None, "query_only", true),
        None => conn
            .pragma_update(None, "query_only", false)
            .and_then(|()| conn.pragma_update(None, "max_page_count", i64::from(u32::MAX - 1))),
    };
    result.map_err(|err| StoreError::Write(err.to_string()))
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::store::{DecisionKind, NewAlarm, NewChange, NewDecision, open};

    fn alarm() -> Command {
        Command::RecordAlarm(NewAlarm {
            received_at: jiff::Timestamp::UNIX_EPOCH,
            remote_addr: None,
            body: "{}".into(),
            kind: "memory".into(),
            value: None,
            instance: None,
            resolved: false,
            message: None,
            triggered_at: None,
        })
    }

    /// A change pointing at an alarm that does not exist.
    fn dangling_change(alarm_id: i64) -> Command {
        Command::RecordDecision(
            alarm_id,
            NewDecision {
                at: jiff::Timestamp::UNIX_EPOCH,
                instance_id: Some(1),
                plan: None,
                kind: DecisionKind::Change,
                reason: None,
                rule: None,
                from_plan: None,
                to_plan: None,
                detail: "test".into(),
            },
            Some(NewChange {
                instance_id: 1,
                alarm_id: Some(999),
                direction: crate::decide::Direction::Up,
                kind: crate::decide::ChangeKind::Plan,
                from_plan: "a".into(),
                to_plan: "b".into(),
                rule: "r".into(),
                cooldown: Duration::ZERO,
                dry_run: false,
                intended_at: jiff::Timestamp::UNIX_EPOCH,
                world: None,
            }),
        )
    }

    /// Queues `commands` before the writer starts (so they make one batch), runs the writer
    /// until the queue is done, and returns each command's answer.
    fn run_one_batch(
        conn: Connection,
        commands: impl IntoIterator<Item = Command>,
    ) -> (Vec<Result<Done, StoreError>>, Arc<Shared>) {
        let (jobs, queue) = mpsc::channel();
        let mut answers = Vec::new();
        for command in commands {
            let (reply, answer) = Reply::direct();
            jobs.send(Job::Write(command, reply)).unwrap();
            answers.push(answer);
        }
        drop(jobs);
        let shared = Arc::new(Shared::default());
        run(conn, queue, Arc::clone(&shared));
        let results = answers
            .into_iter()
            .map(|answer| answer.blocking_recv().unwrap())
            .collect();
        (results, shared)
    }

    /// A refused command in the middle of a batch is answered alone; the others still
    /// commit together, in one commit. An alarm recorded with a decision that is refused
    /// leaves no alarm behind either.
    #[test]
    fn a_refused_command_is_answered_alone_and_the_rest_commits_together() {
        let tmp = tempfile::tempdir().unwrap();
        let opened = open::open(tmp.path()).unwrap();
        let mut unstorable = match dangling_change(1) {
            Command::RecordDecision(_, decision, _) => decision,
            _ => unreachable!(),
        };
        unstorable.instance_id = Some(u64::MAX);
        let commands = [
            alarm(),
            Command::RecordDecidedAlarm(
                match alarm() {
                    Command::RecordAlarm(alarm) => alarm,
                    _ => unreachable!(),
                },
                unstorable,
            ),
            dangling_change(999),
            alarm(),
        ];
        let (results, shared) = run_one_batch(opened.conn, commands);
        assert_eq!(results[0].as_ref().unwrap(), &Some(1));
        let err = results[1].as_ref().unwrap_err().to_string();
        assert!(err.contains("too large"), "{err}");
        let err = results[2].as_ref().unwrap_err().to_string();
        assert!(err.contains("no alarm 999"), "{err}");
        assert_eq!(results[3].as_ref().unwrap(), &Some(2));
        let stats = shared.stats();
        assert_eq!((stats.batches, stats.commits, stats.failed), (1, 1, 2));
        assert!(shared.healthy.load(Ordering::Relaxed));

        let check = rusqlite::Connection::open(opened.path).unwrap();
        let counts: (i64, i64) = check
            .query_row(
                "SELECT (SELECT count(*) FROM alarms), (SELECT count(*) FROM decisions)",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        assert_eq!(counts, (2, 0));
    }

    /// A batch whose COMMIT fails (here a deferred foreign key, checked only at COMMIT) is
    /// rolled back whole and each command retried alone: only the bad one fails.
    #[test]
    fn a_batch_that_cannot_commit_is_retried_command_by_command() {
        let tmp = tempfile::tempdir().unwrap();
        let opened = open::open(tmp.path()).unwrap();
        let conn = opened.conn;
        conn.execute_batch(
            "INSERT INTO alarms (received_at, kind, resolved, body) VALUES ('x', 'cpu', 0, '{}');
             PRAGMA defer_foreign_keys = ON;",
        )
        .unwrap();
        let (results, shared) = run_one_batch(conn, [alarm(), dangling_change(1), alarm()]);
        assert_eq!(results[0].as_ref().unwrap(), &Some(2));
        let err = results[1].as_ref().unwrap_err().to_string();
        assert!(err.contains("FOREIGN KEY"), "{err}");
        assert_eq!(results[2].as_ref().unwrap(), &Some(3));
        let stats = shared.stats();
        assert_eq!((stats.batches, stats.commits, stats.failed), (1, 2, 1));
        assert!(shared.healthy.load(Ordering::Relaxed));

        let check = rusqlite::Connection::open(opened.path).unwrap();
        let counts: (i64, i64, i64) = check
            .query_row(
                "SELECT (SELECT count(*) FROM alarms), (SELECT count(*) FROM decisions), \
                        (SELECT count(*) FROM alarms WHERE decided_at IS NOT NULL)",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .unwrap();
        assert_eq!(
            counts,
            (3, 0, 0),
            "the refused decision left nothing behind"
        );
    }
}
