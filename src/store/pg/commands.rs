//! The SQLite writer's commands ([`Command`]) on PostgreSQL: the same writes, the same
//! refusals, inside the PostgreSQL writer's transaction (see `writer.rs`).
//!
//! What differs from SQLite is what replicas add:
//! - a change is opened only if the shared state is still the version its decision rested
//!   on ([`open_change_checked`]), and only if the instance has no open change (the
//!   unique index); either miss is [`PgFailure::Stale`]: the caller reloads and decides
//!   again;
//! - the writes of a change this replica holds are fenced ([`super::lease`]); a lost lease
//!   is [`PgFailure::LeaseLost`];
//! - a decision is recorded only on an alarm not yet decided (by any replica).

use std::collections::HashMap;
use std::time::Duration;

use deadpool_postgres::Transaction;
use tokio_postgres::types::ToSql;

use super::PgError;
use super::accept::{AcceptItem, INSERT_ALARM, Params};
use super::commands_outbox;
use super::lease::{self, Held, LeaseError};
use super::rows::{db_instance_id, db_time};
use crate::store::commands::{Command, Done};
use crate::store::{
    AlarmId, BaselineRow, CapacityRow, ChangeFinish, ChangeId, InstanceRow, NewAlarm, NewChange,
    NewDecision, NewLook, NewScheduleRun, PauseRow,
};

/// What the PostgreSQL writer keeps between transactions.
#[derive(Debug)]
pub(crate) struct WriterCtx {
    /// This replica's id: the `owner` of what it holds.
    pub(crate) owner: String,
    /// `state.lease`.
    pub(crate) lease: Duration,
    /// The open changes this replica holds, by id.
    pub(crate) held: HashMap<ChangeId, Held>,
    /// This replica has left (a clean stop): it opens no change any more.
    pub(crate) left: bool,
}

/// Why a command failed on PostgreSQL.
#[derive(Debug)]
pub(crate) enum PgFailure {
    /// The database failed or went away: the store turns unhealthy; in a batch, the whole
    /// transaction is lost.
    Storage(PgError),
    /// A write the store will not make (an invalid transition, an unknown or already
    /// decided alarm): the caller's mistake.
    Refused(String),
    /// The decision rested on state another replica has changed since (or the instance
    /// has an open change already): nothing written; reload and decide again.
    Stale(String),
    /// This replica no longer holds the change: stop working on it.
    LeaseLost(ChangeId),
}

impl From<PgError> for PgFailure {
    fn from(err: PgError) -> Self {
        match err {
            PgError::Refused(message) => PgFailure::Refused(message),
            other => PgFailure::Storage(other),
        }
    }
}

impl From<tokio_postgres::Error> for PgFailure {
    fn from(err: tokio_postgres::Error) -> Self {
        PgError::from(err).into()
    }
}

impl From<crate::store::StoreError> for PgFailure {
    fn from(err: crate::store::StoreError) -> Self {
        PgFailure::Refused(match err {
            crate::store::StoreError::Write(message) => message,
            other => other.to_string(),
        })
    }
}

/// Runs `command` in `tx` (which the writer commits or rolls back): a command that fails
/// half-way leaves nothing behind once the writer rolls back.
pub(crate) async fn execute(
    tx: &Transaction<'_>,
    command: &Command,
    ctx: &mut WriterCtx,
) -> Result<Done, PgFailure> {
    match command {
        Command::RecordAlarm(alarm) => record_alarm(tx, alarm, None, ctx).await.map(Some),
        Command::RecordDecidedAlarm(alarm, decision) => {
            record_alarm(tx, alarm, Some(decision), ctx).await.map(Some)
        }
        Command::RecordDecision(alarm_id, decision, change) => {
            record_decision(tx, *alarm_id, decision, change.as_ref(), ctx).await
        }
        Command::MarkSubmitted(change, accepted_at) => {
            let held = held(ctx, *change)?;
            let written = lease::mark_submitted(tx, &held, *accepted_at).await;
            fenced(ctx, *change, written).map(|()| None)
        }
        Command::MarkUnsent(change, unsent) => {
            let held = held(ctx, *change)?;
            let written = lease::mark_unsent(tx, &held, *unsent).await;
            fenced(ctx, *change, written).map(|()| None)
        }
        Command::FinishChange(change, finish) => {
            finish_change(tx, *change, finish, ctx).await.map(|()| None)
        }
        Command::UpsertInstance(instance) => upsert_instance(tx, instance).await.map(|()| None),
        Command::RecordLook(look, change) => record_look(tx, look, change.as_ref(), ctx).await,
        Command::RecordScheduleRun(run, change) => {
            record_schedule_run(tx, run, change.as_ref(), ctx).await
        }
        Command::SetBaseline(baseline) => set_baseline(tx, baseline).await.map(|()| None),
        Command::RecordCapacity(capacity) => record_capacity(tx, capacity).await.map(|()| None),
        Command::AddPause(pause) => add_pause(tx, pause).await.map(|()| None),
        Command::EndPauses(id, at) => end_pauses(tx, id.as_deref(), *at).await.map(Some),
        Command::Notifying(command, notes) => {
            // Boxed: an async fn calling itself needs the indirection.
            let done = Box::pin(execute(tx, command, ctx)).await?;
            commands_outbox::insert(tx, notes, &ctx.owner).await?;
            Ok(done)
        }
        Command::Notify(notes) => commands_outbox::insert(tx, notes, &ctx.owner)
            .await
            .map(|()| None),
        Command::RecordDelivery(attempt) => commands_outbox::record_attempt(tx, attempt)
            .await
            .map(|()| None),
        Command::Prune(prune) => commands_outbox::prune_batch(tx, prune).await.map(Some),
    }
}

/// Opens `change` (phase `intended`) held by this replica, if the shared state is still
/// the version the decision rested on and the instance has no open change; the world row
/// stays locked until the writer's COMMIT, so no other replica's write can slip between
/// this check and the COMMIT. Returns the change's id; the lease is remembered in `ctx`
/// (forgotten again by the writer if the transaction does not commit).
pub(crate) async fn open_change_checked(
    tx: &Transaction<'_>,
    change: &NewChange,
    ctx: &mut WriterCtx,
) -> Result<ChangeId, PgFailure> {
    if ctx.left {
        return Err(PgFailure::Refused(
            "this replica is stopping: it starts no change (another replica decides the alarm again)".into(),
        ));
    }
    let row = tx
        .query_one("SELECT version FROM world FOR UPDATE", &[])
        .await?;
    let version: i64 = row.try_get("version")?;
    if change.world != Some(version) {
        return Err(PgFailure::Stale(format!(
            "the shared state moved (version {version}, the decision saw {})",
            change
                .world
                .map_or_else(|| "none".to_owned(), |seen| seen.to_string())
        )));
    }
    match lease::open_change(tx, change, &ctx.owner, ctx.lease).await {
        Ok(held) => {
            let id = held.change_id;
            ctx.held.insert(id, held);
            Ok(id)
        }
        Err(LeaseError::Busy { instance_id }) => Err(PgFailure::Stale(format!(
            "instance {instance_id} has a change in flight already"
        ))),
        Err(other) => Err(lease_failure(other)),
    }
}

/// A lease operation's failure as the writer reports it.
pub(crate) fn lease_failure(err: LeaseError) -> PgFailure {
    match err {
        LeaseError::Busy { instance_id } => PgFailure::Stale(format!(
            "instance {instance_id} has a change in flight already"
        )),
        LeaseError::LeaseLost { change_id } => PgFailure::LeaseLost(change_id),
        LeaseError::Refused(message) => PgFailure::Refused(message),
        LeaseError::Database(err) => err.into(),
    }
}

/// Inserts `alarm` as [`super::record_alarms`] does: with its decision, or claimed by this
/// replica for `ctx.lease` while it decides it.
async fn record_alarm(
    tx: &Transaction<'_>,
    alarm: &NewAlarm,
    decision: Option<&NewDecision>,
    ctx: &WriterCtx,
) -> Result<AlarmId, PgFailure> {
    let item = AcceptItem {
        alarm: alarm.clone(),
        decision: decision.cloned(),
        owner: ctx.owner.clone(),
        claim: ctx.lease,
    };
    let params = Params::new(&item)?;
    let statement = tx.prepare_cached(INSERT_ALARM).await?;
    let row = tx.query_one(&statement, &params.as_sql()).await?;
    Ok(row.try_get("id")?)
}

/// The decision columns of `alarms`, written only while no replica decided it yet.
const DECIDE_ALARM: &str = "UPDATE alarms SET decided_at = $1, instance_id = $2, plan = $3, \
    decision = $4, reason = $5, rule = $6, from_plan = $7, to_plan = $8, detail = $9 \
    WHERE id = $10 AND decided_at IS NULL";

/// Records the decision on its alarm's row, then opens the change it starts, if any (so a
/// refused decision writes nothing). An alarm is decided once, by whichever replica.
async fn record_decision(
    tx: &Transaction<'_>,
    alarm_id: AlarmId,
    decision: &NewDecision,
    change: Option<&NewChange>,
    ctx: &mut WriterCtx,
) -> Result<Done, PgFailure> {
    decide_row(tx, alarm_id, decision).await?;
    match change {
        Some(change) => Ok(Some(open_change_checked(tx, change, ctx).await?)),
        None => Ok(None),
    }
}

/// A command that needs nothing of the writer's state but its owner and lease, as a
/// future that can run pipelined beside others of its kind in one transaction (an
/// alarm, a decision that starts no change): the webhook's path costs about one round
/// trip per batch, not one per alarm. `None`: run it alone, in order.
pub(crate) fn pipelined<'a>(
    tx: &'a Transaction<'a>,
    command: &'a Command,
    ctx: &'a WriterCtx,
) -> Option<futures_util::future::BoxFuture<'a, Result<Done, PgFailure>>> {
    match command {
        Command::RecordAlarm(alarm) => Some(Box::pin(async move {
            record_alarm(tx, alarm, None, ctx).await.map(Some)
        })),
        Command::RecordDecidedAlarm(alarm, decision) => Some(Box::pin(async move {
            record_alarm(tx, alarm, Some(decision), ctx).await.map(Some)
        })),
        Command::RecordDecision(alarm_id, decision, None) => Some(Box::pin(async move {
            decide_row(tx, *alarm_id, decision).await.map(|()| None)
        })),
        _ => None,
    }
}

/// Whether [`pipelined`] takes `command`.
pub(crate) fn is_pipelined(command: &Command) -> bool {
    matches!(
        command,
        Command::RecordAlarm(_)
            | Command::RecordDecidedAlarm(..)
            | Command::RecordDecision(_, _, None)
    )
}

/// Writes `decision` into alarm `alarm_id`'s row, if no replica decided it yet.
async fn decide_row(
    tx: &Transaction<'_>,
    alarm_id: AlarmId,
    decision: &NewDecision,
) -> Result<(), PgFailure> {
    let decided_at = db_time(decision.at)?;
    let instance_id = decision.instance_id.map(db_instance_id).transpose()?;
    let statement = tx.prepare_cached(DECIDE_ALARM).await?;
    let decided = tx
        .execute(
            &statement,
            &[
                &decided_at,
                &instance_id,
                &decision.plan,
                &decision.kind.as_str(),
                &decision.reason,
                &decision.rule,
                &decision.from_plan,
                &decision.to_plan,
                &decision.detail,
                &alarm_id,
            ],
        )
        .await?;
    if decided == 0 {
        let statement = tx
            .prepare_cached("SELECT 1 FROM alarms WHERE id = $1")
            .await?;
        let exists = tx.query_opt(&statement, &[&alarm_id]).await?.is_some();
        return Err(PgFailure::Refused(if exists {
            format!("alarm {alarm_id} is already decided")
        } else {
            format!("no alarm {alarm_id} to record a decision for")
        }));
    }
    Ok(())
}

/// The lease this replica holds on `change`; none is a lost lease.
fn held(ctx: &WriterCtx, change: ChangeId) -> Result<Held, PgFailure> {
    ctx.held
        .get(&change)
        .cloned()
        .ok_or(PgFailure::LeaseLost(change))
}

/// A fenced write's outcome; a lost lease is forgotten at once.
fn fenced(
    ctx: &mut WriterCtx,
    change: ChangeId,
    written: Result<(), LeaseError>,
) -> Result<(), PgFailure> {
    written.map_err(|err| {
        let failure = lease_failure(err);
        if matches!(failure, PgFailure::LeaseLost(_)) {
            ctx.held.remove(&change);
        }
        failure
    })
}

async fn finish_change(
    tx: &Transaction<'_>,
    change: ChangeId,
    finish: &ChangeFinish,
    ctx: &mut WriterCtx,
) -> Result<(), PgFailure> {
    // As SQLite: a phase that is not final is refused before anything else.
    if !finish.phase.is_final() {
        return Err(PgFailure::Refused(format!(
            "cannot finish change {change} in phase {}: a change finishes as completed, \
             failed or timed_out",
            finish.phase.as_str()
        )));
    }
    let held = held(ctx, change)?;
    let written = lease::finish(tx, &held, finish).await;
    fenced(ctx, change, written)?;
    // Finished: nothing more to hold (the writer puts it back if the COMMIT fails).
    ctx.held.remove(&change);
    Ok(())
}

/// A field given as `None` keeps what is stored.
async fn upsert_instance(tx: &Transaction<'_>, instance: &InstanceRow) -> Result<(), PgFailure> {
    let statement = tx
        .prepare_cached(
            "INSERT INTO instances (id, name, providerid, plan, updated_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (id) DO UPDATE SET \
                 name = coalesce(excluded.name, instances.name), \
                 providerid = coalesce(excluded.providerid, instances.providerid), \
                 plan = coalesce(excluded.plan, instances.plan), \
                 updated_at = excluded.updated_at",
        )
        .await?;
    tx.execute(
        &statement,
        &[
            &db_instance_id(instance.id)?,
            &instance.name,
            &instance.providerid,
            &instance.plan,
            &db_time(instance.updated_at)?,
        ],
    )
    .await?;
    Ok(())
}

/// Opens the change a look starts (if any), then inserts the look linked to it.
async fn record_look(
    tx: &Transaction<'_>,
    look: &NewLook,
    change: Option<&NewChange>,
    ctx: &mut WriterCtx,
) -> Result<Done, PgFailure> {
    let instance_id = db_instance_id(look.instance_id)?;
    let at = db_time(look.at)?;
    let change_id = match change {
        Some(change) => Some(open_change_checked(tx, change, ctx).await?),
        None => None,
    };
    let statement = tx
        .prepare_cached(
            "INSERT INTO looks (instance_id, at, plan, to_plan, passed, reason, detail, \
             projected_memory_percent, decision, change_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .await?;
    tx.execute(
        &statement,
        &[
            &instance_id,
            &at,
            &look.plan,
            &look.to_plan,
            &look.passed,
            &look.reason,
            &look.detail,
            &look.projected_memory_percent.filter(|p| p.is_finite()),
            &look.kind.as_str(),
            &change_id,
        ],
    )
    .await?;
    Ok(change_id)
}

/// Inserts a run, unless it is a second one that made a change for its opening (the
/// unique index `schedule_runs_one_change_per_opening`): then nothing, `None`.
const INSERT_RUN: &str = "INSERT INTO schedule_runs (schedule, instance_id, opened_at, at, \
    plan, to_plan, decision, reason, detail, change_id) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
    ON CONFLICT (schedule, instance_id, opened_at) WHERE decision <> 'skip' DO NOTHING \
    RETURNING id";

/// Records what an opening of a schedule did, and the change it starts (linked from the
/// run, as on SQLite). An opening makes one change at most, whichever replica saw it: a
/// second run that is not a skip is stale, and writes nothing.
///
/// The run is inserted after the change is opened: inserting a run moves `world` (a
/// trigger), which would make the run's own change look stale. So the opening is checked
/// first, under the `world` row's lock, which every writer of a run takes before its
/// INSERT (this one explicitly, others through that trigger, after the INSERT): two
/// replicas recording one opening are serialized on it, and the later one sees either the
/// moved version or the earlier run.
async fn record_schedule_run(
    tx: &Transaction<'_>,
    run: &NewScheduleRun,
    change: Option<&NewChange>,
    ctx: &mut WriterCtx,
) -> Result<Done, PgFailure> {
    let instance_id = db_instance_id(run.instance_id)?;
    let opened_at = db_time(run.opened_at)?;
    let at = db_time(run.at)?;
    let stale = || {
        PgFailure::Stale(format!(
            "schedule {:?} opening {} on instance {} made a change already",
            run.schedule, run.opened_at, run.instance_id
        ))
    };
    let makes_change = run.kind != crate::store::DecisionKind::Skip;
    if makes_change {
        let statement = tx
            .prepare_cached("SELECT version FROM world FOR UPDATE")
            .await?;
        tx.query_one(&statement, &[]).await?;
        let statement = tx
            .prepare_cached(
                "SELECT 1 FROM schedule_runs WHERE schedule = $1 AND instance_id = $2 \
                 AND opened_at = $3 AND decision <> 'skip'",
            )
            .await?;
        let taken = tx
            .query_opt(&statement, &[&run.schedule, &instance_id, &opened_at])
            .await?;
        if taken.is_some() {
            return Err(stale());
        }
    }
    let change_id = match change {
        Some(change) => Some(open_change_checked(tx, change, ctx).await?),
        None => None,
    };
    let statement = tx.prepare_cached(INSERT_RUN).await?;
    let params: [&(dyn ToSql + Sync); 10] = [
        &run.schedule,
        &instance_id,
        &opened_at,
        &at,
        &run.plan,
        &run.to_plan,
        &run.kind.as_str(),
        &run.reason,
        &run.detail,
        &change_id,
    ];
    if tx.query_opt(&statement, &params).await?.is_none() {
        // Checked above, so only a writer that did not take the lock first: the change
        // opened here goes with the transaction the writer rolls back.
        return Err(stale());
    }
    Ok(change_id)
}

async fn set_baseline(tx: &Transaction<'_>, baseline: &BaselineRow) -> Result<(), PgFailure> {
    let statement = tx
        .prepare_cached(
            "INSERT INTO instances (id, baseline, baseline_since, updated_at) \
             VALUES ($1, $2, $3, $3) \
             ON CONFLICT (id) DO UPDATE SET baseline = excluded.baseline, \
                 baseline_since = excluded.baseline_since",
        )
        .await?;
    tx.execute(
        &statement,
        &[
            &db_instance_id(baseline.instance_id)?,
            &baseline.plan,
            &db_time(baseline.since)?,
        ],
    )
    .await?;
    Ok(())
}

async fn record_capacity(tx: &Transaction<'_>, capacity: &CapacityRow) -> Result<(), PgFailure> {
    let mem_limit = i64::try_from(capacity.mem_limit).map_err(|_| {
        PgFailure::Refused(format!("memory limit {} is too large", capacity.mem_limit))
    })?;
    // `integer` here (SQLite's integers are all 64 bits).
    let nodes = i32::try_from(capacity.nodes)
        .map_err(|_| PgFailure::Refused(format!("{} nodes is too many", capacity.nodes)))?;
    let statement = tx
        .prepare_cached(
            "INSERT INTO capacities (instance_id, plan, mem_limit, nodes, seen_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (instance_id, plan) DO UPDATE SET mem_limit = excluded.mem_limit, \
                 nodes = excluded.nodes, seen_at = excluded.seen_at",
        )
        .await?;
    tx.execute(
        &statement,
        &[
            &db_instance_id(capacity.instance_id)?,
            &capacity.plan,
            &mem_limit,
            &nodes,
            &db_time(capacity.seen_at)?,
        ],
    )
    .await?;
    Ok(())
}

async fn add_pause(tx: &Transaction<'_>, pause: &PauseRow) -> Result<(), PgFailure> {
    let instances = serde_json::to_string(&pause.instances)
        .map_err(|e| PgFailure::Refused(format!("cannot store the pause's instances: {e}")))?;
    let statement = tx
        .prepare_cached(
            "INSERT INTO pauses (id, created_at, until, directions, instances, reason) \
             VALUES ($1, $2, $3, $4, $5::text::jsonb, $6)",
        )
        .await?;
    tx.execute(
        &statement,
        &[
            &pause.id,
            &db_time(pause.created_at)?,
            &db_time(pause.until)?,
            &pause.directions.as_str(),
            &instances,
            &pause.reason,
        ],
    )
    .await?;
    Ok(())
}

/// Sets `ended_at` on the pause `id` (every pause with `None`) not ended yet; how many.
async fn end_pauses(
    tx: &Transaction<'_>,
    id: Option<&str>,
    at: jiff::Timestamp,
) -> Result<i64, PgFailure> {
    let statement = tx
        .prepare_cached(
            "UPDATE pauses SET ended_at = $1 \
             WHERE ended_at IS NULL AND ($2::text IS NULL OR id = $2::text)",
        )
        .await?;
    let ended = tx.execute(&statement, &[&db_time(at)?, &id]).await?;
    Ok(i64::try_from(ended).unwrap_or(i64::MAX))
}
