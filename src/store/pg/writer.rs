//! The PostgreSQL writer: the SQLite writer's group commit, on a shared database, and
//! the keeper of this replica's leases.
//!
//! One thread takes the first queued command, drains what queued up meanwhile, and runs
//! them all in one transaction (one COMMIT: with `synchronous_commit` on, one WAL flush
//! for the batch); every caller is answered only after that COMMIT returned, so a `202`
//! means "in PostgreSQL". On any failure the batch is rolled back and each command is run
//! again in its own transaction, so only the ones that cannot be written fail: a refusal
//! is that command's, a database that went away fails them all (`503`) and turns the
//! store unhealthy until a write succeeds again.
//!
//! The thread drives its futures with the daemon's runtime (`Handle::block_on`), so the
//! pool's connections are served by the runtime's workers like any other socket.
//!
//! Leases: every change this replica opens or takes over is in [`WriterCtx::held`]; at
//! least every third of `state.lease` the writer renews them (and its heartbeat). A lease it fails to renew, or a write refused as
//! not held, is lost: recorded in `Shared::lost` so the change's task stops at once.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use tokio::runtime::Handle;

use super::PgError;
use super::commands::{PgFailure, WriterCtx, execute};
use crate::store::commands::{Command, Done};
use crate::store::replica_jobs::{Claimed, ReplicaJob};
use crate::store::replies::{Deliveries, Reply};
use crate::store::writer::{Job, MAX_BATCH, Shared};
use crate::store::{ChangeId, PendingAlarm, StoreError};

/// How often an unhealthy, idle writer tries the database again.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// The most changes and alarms one takeover claims.
const CLAIM_CHANGES: usize = 16;
const CLAIM_ALARMS: usize = 64;
/// What a lease renewed before a PUT holds beyond what the PUT needs.
pub(crate) const RENEW_SLACK: Duration = Duration::from_secs(1);
/// An alarm with no claim at all is left this long to the replica writing it.
const UNCLAIMED_GRACE: Duration = Duration::from_secs(1);

/// Runs until every sender is gone, then returns having answered everything queued.
pub(crate) fn run(
    handle: Handle,
    pool: Pool,
    jobs: Receiver<Job>,
    shared: Arc<Shared>,
    mut ctx: WriterCtx,
) {
    let upkeep_every = ctx.lease / 3;
    let mut last_upkeep = Instant::now();
    let mut batch: Vec<(Command, Reply)> = Vec::with_capacity(MAX_BATCH);
    let mut replica_jobs = Vec::new();
    loop {
        let wait = if shared.healthy.load(Ordering::Relaxed) {
            upkeep_every.saturating_sub(last_upkeep.elapsed())
        } else {
            PROBE_INTERVAL.min(upkeep_every)
        };
        let first = match jobs.recv_timeout(wait) {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => {
                handle.block_on(upkeep(&pool, &mut ctx, &shared));
                last_upkeep = Instant::now();
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Write(command, reply) => batch.push((command, reply)),
                Job::Replica(job) => replica_jobs.push(job),
                Job::Fault(_, reply) => {
                    let _ = reply.send(Err(StoreError::Write(
                        "storage faults are simulated on SQLite only".into(),
                    )));
                }
            }
            if batch.len() < MAX_BATCH {
                next = jobs.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            handle.block_on(write_batch(&pool, &mut batch, &mut ctx, &shared));
        }
        for job in replica_jobs.drain(..) {
            handle.block_on(replica_job(&pool, job, &mut ctx, &shared));
        }
        if last_upkeep.elapsed() >= upkeep_every {
            handle.block_on(upkeep(&pool, &mut ctx, &shared));
            last_upkeep = Instant::now();
        }
    }
    tracing::debug!("state database writer stopped");
}

async fn write_batch(
    pool: &Pool,
    batch: &mut Vec<(Command, Reply)>,
    ctx: &mut WriterCtx,
    shared: &Shared,
) {
    let mut answers = Deliveries::default();
    let size = batch.len() as u64;
    shared.commands.fetch_add(size, Ordering::Relaxed);
    shared.batches.fetch_add(1, Ordering::Relaxed);
    shared.largest_batch.fetch_max(size, Ordering::Relaxed);
    let commands: Vec<&Command> = batch.iter().map(|(command, _)| command).collect();
    let accepted: Vec<ChangeId> = commands.iter().filter_map(|c| submitted(c)).collect();
    let held = ctx.held.clone();
    match transaction(pool, &commands, ctx).await {
        Ok(results) => {
            shared.commits.fetch_add(1, Ordering::Relaxed);
            shared.healthy.store(true, Ordering::Relaxed);
            for ((command, reply), done) in batch.drain(..).zip(results) {
                shared.hand_out(&command);
                answers.push(reply, Ok(done));
            }
            answers.flush();
            settle_after_puts(pool, &accepted, ctx).await;
            return;
        }
        Err(err) if batch.len() > 1 => {
            ctx.held = held;
            tracing::warn!(
                error = %describe(&err),
                commands = batch.len(),
                "state database batch failed; retrying each command in its own transaction"
            );
        }
        Err(_) => ctx.held = held,
    }
    for (command, reply) in batch.drain(..) {
        let held = ctx.held.clone();
        let result = transaction(pool, &[&command], ctx).await;
        let result = match result {
            Ok(mut done) => {
                shared.commits.fetch_add(1, Ordering::Relaxed);
                shared.healthy.store(true, Ordering::Relaxed);
                shared.hand_out(&command);
                if let Some(change) = submitted(&command) {
                    settle_after_puts(pool, &[change], ctx).await;
                }
                Ok(done.pop().flatten())
            }
            Err(failure) => {
                ctx.held = held;
                Err(settle(&command, failure, ctx, shared))
            }
        };
        answers.push(reply, result);
        answers.flush();
    }
}

/// The change a command records as accepted by CloudAMQP, if it does.
fn submitted(command: &Command) -> Option<ChangeId> {
    match command {
        Command::MarkSubmitted(change, _) => Some(*change),
        Command::Notifying(inner, _) => submitted(inner),
        _ => None,
    }
}

/// The PUTs of `changes` are over (accepted): their leases, lengthened to cover the PUT,
/// go back to `state.lease`, so a crash from now on is taken over within it. A failure
/// here only leaves a lease longer than it needs to be.
async fn settle_after_puts(pool: &Pool, changes: &[ChangeId], ctx: &mut WriterCtx) {
    if changes.is_empty() {
        return;
    }
    let Ok(client) = pool.get().await else {
        return;
    };
    for change in changes {
        if let Some(held) = ctx.held.get_mut(change)
            && let Err(err) = super::lease::settle(&client, held, ctx.lease).await
        {
            tracing::debug!(change, error = %err, "cannot shorten the lease after the PUT");
        }
    }
}

/// `commands` in one transaction, committed once; nothing of them kept on an error.
async fn transaction(
    pool: &Pool,
    commands: &[&Command],
    ctx: &mut WriterCtx,
) -> Result<Vec<Done>, PgFailure> {
    let mut client = pool.get().await.map_err(PgError::from)?;
    let tx = client.transaction().await?;
    let mut results = Vec::with_capacity(commands.len());
    let mut rest = commands;
    while let Some((first, _)) = rest.split_first() {
        // A run of commands that can be pipelined: every statement sent before the first
        // answer is awaited (one connection answers in order); the first error in order
        // is the cause, those after it only "the transaction is aborted".
        let run = rest
            .iter()
            .take_while(|command| super::commands::is_pipelined(command))
            .count();
        if run > 0 {
            let shared_ctx: &WriterCtx = ctx;
            let futures = rest[..run]
                .iter()
                .filter_map(|command| super::commands::pipelined(&tx, command, shared_ctx));
            results.extend(
                futures_util::future::join_all(futures)
                    .await
                    .into_iter()
                    .collect::<Result<Vec<_>, _>>()?,
            );
            rest = &rest[run..];
        } else {
            results.push(execute(&tx, first, ctx).await?);
            rest = &rest[1..];
        }
    }
    tx.commit().await?;
    Ok(results)
}

/// Logs a failed command (its name and the error, never its parameters), notes a lost
/// lease, and turns the failure into the caller's error.
fn settle(
    command: &Command,
    failure: PgFailure,
    ctx: &mut WriterCtx,
    shared: &Shared,
) -> StoreError {
    shared.failed.fetch_add(1, Ordering::Relaxed);
    match failure {
        PgFailure::Storage(err) => {
            shared.healthy.store(false, Ordering::Relaxed);
            tracing::error!(command = command.name(), error = %err, "state database write failed");
            StoreError::Write(err.to_string())
        }
        PgFailure::Refused(reason) => {
            tracing::warn!(command = command.name(), %reason, "state database refused a write");
            StoreError::Write(reason)
        }
        PgFailure::Stale(reason) => {
            tracing::info!(command = command.name(), %reason, "a decision rested on state another replica changed");
            StoreError::Stale(reason)
        }
        PgFailure::LeaseLost(change) => {
            lost(change, ctx, shared);
            StoreError::LeaseLost(change)
        }
    }
}

fn describe(failure: &PgFailure) -> String {
    match failure {
        PgFailure::Storage(err) => err.to_string(),
        PgFailure::Refused(reason) | PgFailure::Stale(reason) => reason.clone(),
        PgFailure::LeaseLost(change) => format!("the lease on change {change} is lost"),
    }
}

/// This replica no longer holds `change`: its task stops at its next step.
fn lost(change: ChangeId, ctx: &mut WriterCtx, shared: &Shared) {
    ctx.held.remove(&change);
    tracing::warn!(
        change,
        "lease lost: this replica stops working on the change"
    );
    shared.note_lost(change);
}

async fn replica_job(pool: &Pool, job: ReplicaJob, ctx: &mut WriterCtx, shared: &Shared) {
    match job {
        ReplicaJob::HoldFor {
            change,
            needed,
            reply,
        } => {
            let _ = reply.send(hold_for(pool, change, needed, ctx, shared).await);
        }
        ReplicaJob::Claim { reply } => {
            let _ = reply.send(claim(pool, ctx, shared).await.map_err(|err| {
                tracing::warn!(error = %err, "cannot look for work left by other replicas");
                StoreError::Write(err.to_string())
            }));
        }
        ReplicaJob::Leave { reply } => {
            match leave(pool, ctx).await {
                Ok((changes, alarms)) => tracing::info!(
                    changes,
                    alarms,
                    "left the replicas: open changes and undecided alarms released to the others"
                ),
                Err(err) => {
                    tracing::warn!(error = %err, "cannot release this replica's leases: the other replicas take its work over once they expire")
                }
            }
            let _ = reply.send(());
        }
    }
}

/// Ends this replica's leases and claims now and removes its row (its deliveries are then
/// a replica's gone, taken over at the next claim). Whatever the outcome, it holds no
/// lease afterwards: nothing more of it is written for a change.
async fn leave(pool: &Pool, ctx: &mut WriterCtx) -> Result<(u64, u64), PgError> {
    ctx.held.clear();
    // A decision still running past the stop's grace must not open a change no one here
    // will work on (and hold it for a lease): refused from now on.
    ctx.left = true;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let changes = tx
        .execute(
            "UPDATE changes SET lease_until = clock_timestamp() \
              WHERE owner = $1 AND phase IN ('intended', 'submitted') \
                AND lease_until > clock_timestamp()",
            &[&ctx.owner],
        )
        .await?;
    let alarms = tx
        .execute(
            "UPDATE alarms SET claimed_until = clock_timestamp() \
              WHERE owner = $1 AND decided_at IS NULL AND claimed_until > clock_timestamp()",
            &[&ctx.owner],
        )
        .await?;
    tx.execute("DELETE FROM replicas WHERE id = $1", &[&ctx.owner])
        .await?;
    tx.commit().await?;
    Ok((changes, alarms))
}

/// Renews `change`'s lease if what is left of it does not cover `needed`.
async fn hold_for(
    pool: &Pool,
    change: ChangeId,
    needed: Duration,
    ctx: &mut WriterCtx,
    shared: &Shared,
) -> Result<(), StoreError> {
    let Some(held) = ctx.held.get_mut(&change) else {
        shared.note_lost(change);
        return Err(StoreError::LeaseLost(change));
    };
    if held.deadline.covers(Instant::now(), needed) {
        return Ok(());
    }
    let client = pool
        .get()
        .await
        .map_err(|err| StoreError::Write(PgError::from(err).to_string()))?;
    // A little more than `needed`: the statement's own time counts against the lease.
    let renewal = ctx.lease.max(needed + RENEW_SLACK);
    match super::lease::renew(&client, held, renewal).await {
        Ok(true) if held.deadline.covers(Instant::now(), needed) => Ok(()),
        Ok(true) => Err(StoreError::Write(format!(
            "state.lease is too short to cover a request to CloudAMQP ({}s needed)",
            needed.as_secs()
        ))),
        Ok(false) => {
            lost(change, ctx, shared);
            Err(StoreError::LeaseLost(change))
        }
        Err(err) => Err(StoreError::Write(err.to_string())),
    }
}

/// Takes over what replicas that died left: open changes past their lease, undecided
/// alarms past their claim.
async fn claim(pool: &Pool, ctx: &mut WriterCtx, shared: &Shared) -> Result<Claimed, PgError> {
    let client = pool.get().await?;
    claim_deliveries(&client, ctx, shared).await?;
    let changes =
        super::claim::claim_expired(&client, &ctx.owner, ctx.lease, CLAIM_CHANGES).await?;
    let alarms = super::claim::claim_undecided_alarms(
        &client,
        &ctx.owner,
        ctx.lease,
        CLAIM_ALARMS,
        UNCLAIMED_GRACE,
    )
    .await?;
    let mut claimed = Claimed {
        more_changes: changes.len() >= CLAIM_CHANGES,
        more_alarms: alarms.len() >= CLAIM_ALARMS,
        ..Claimed::default()
    };
    for change in changes {
        tracing::warn!(
            change = change.change.id,
            instance = change.change.instance_id,
            previous_owner = %change.previous_owner,
            previous_fence = change.previous_fence,
            fence = change.held.fence,
            "taking over a change whose lease ended"
        );
        // Its own change back (its lease ran out before it was renewed): whatever still
        // works on it under the old lease stops; the work the claim starts is new.
        if ctx.held.contains_key(&change.change.id) || change.previous_owner == ctx.owner {
            shared.note_lost(change.change.id);
        }
        ctx.held.insert(change.change.id, change.held);
        shared.note_claimed(change.change.id);
        claimed.changes.push(change.change);
    }
    for alarm in alarms {
        tracing::warn!(
            alarm_id = alarm.id,
            previous_owner = alarm.previous_owner.as_deref(),
            "taking over an alarm accepted but not decided in time"
        );
        claimed.alarms.push(PendingAlarm {
            id: alarm.id,
            received_at: alarm.received_at,
            body: alarm.body,
        });
    }
    Ok(claimed)
}

const CLAIM_DELIVERIES: &str = "UPDATE deliveries AS d SET owner = $1 \
      FROM notifications AS n \
     WHERE n.id = d.notification_id AND d.state = 'pending' \
       AND (d.owner IS NULL OR d.owner NOT IN ( \
             SELECT id FROM replicas WHERE heartbeat > clock_timestamp() \
               - make_interval(secs => $2::double precision))) \
    RETURNING n.id, n.event_id, d.sink, n.instance_id, n.at, n.body::text AS body, d.attempts";

/// Takes over the pending deliveries of replicas no longer alive (no heartbeat for three
/// leases) and hands them to this replica's senders: each event is sent by one replica at
/// a time, and at least once.
async fn claim_deliveries(
    client: &deadpool_postgres::Client,
    ctx: &WriterCtx,
    shared: &Shared,
) -> Result<(), PgError> {
    let Some(outbox) = shared.outbox.get() else {
        // No sink here: nothing to send them with.
        return Ok(());
    };
    let statement = client.prepare_cached(CLAIM_DELIVERIES).await?;
    let rows = client
        .query(&statement, &[&ctx.owner, &(ctx.lease * 3).as_secs_f64()])
        .await?;
    let mut taken = rows
        .iter()
        .map(
            |row| -> Result<(i64, crate::store::PendingDelivery), PgError> {
                let attempts: i32 = row.try_get("attempts")?;
                let instance_id: Option<i64> = row.try_get("instance_id")?;
                let at: std::time::SystemTime = row.try_get("at")?;
                Ok((
                    row.try_get("id")?,
                    crate::store::PendingDelivery {
                        event_id: row.try_get("event_id")?,
                        sink: row.try_get("sink")?,
                        instance_id: instance_id.and_then(|id| u64::try_from(id).ok()),
                        at: jiff::Timestamp::try_from(at)
                            .map_err(|err| PgError::Refused(err.to_string()))?,
                        body: row.try_get("body")?,
                        attempts: u32::try_from(attempts).unwrap_or(0),
                    },
                ))
            },
        )
        .collect::<Result<Vec<_>, _>>()?;
    // In the order the events happened, as at a start.
    taken.sort_by(|a, b| (a.0, &a.1.sink).cmp(&(b.0, &b.1.sink)));
    if !taken.is_empty() {
        tracing::warn!(
            deliveries = taken.len(),
            "taking over notifications a replica gone left unsent"
        );
    }
    for (_, delivery) in taken {
        let _ = outbox.send(delivery);
    }
    Ok(())
}

/// Renews every lease this replica holds and its heartbeat; a success after a failure
/// makes the store healthy again. Claims on alarms are not renewed: an alarm not decided
/// within a lease (a decision that kept failing, a replica stalled) is taken up by
/// whichever replica claims it next, and only one decision of it is ever recorded.
async fn upkeep(pool: &Pool, ctx: &mut WriterCtx, shared: &Shared) {
    match renew_all(pool, ctx, shared).await {
        Ok(()) => {
            if !shared.healthy.swap(true, Ordering::Relaxed) {
                tracing::info!("the state database takes writes again");
            }
        }
        Err(err) => {
            shared.healthy.store(false, Ordering::Relaxed);
            tracing::warn!(error = %err, "cannot renew this replica's leases and heartbeat");
        }
    }
}

async fn renew_all(pool: &Pool, ctx: &mut WriterCtx, shared: &Shared) -> Result<(), PgError> {
    let client = pool.get().await?;
    let gone = match super::lease::renew_many(&client, &ctx.owner, &mut ctx.held, ctx.lease).await {
        Ok(gone) => gone,
        Err(super::lease::LeaseError::Database(err)) => return Err(err),
        Err(other) => return Err(PgError::Refused(other.to_string())),
    };
    for id in gone {
        lost(id, ctx, shared);
    }
    let statement = client
        .prepare_cached("UPDATE replicas SET heartbeat = clock_timestamp() WHERE id = $1")
        .await?;
    client.execute(&statement, &[&ctx.owner]).await?;
    Ok(())
}
