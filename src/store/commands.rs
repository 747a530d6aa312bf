//! The writes the store knows, and how each runs inside a transaction.
//!
//! Every statement goes through `prepare_cached`: the writer runs the same handful of
//! statements thousands of times, and parsing SQL each time would cost more than the insert.

use rusqlite::types::Null;
use rusqlite::{Connection, OptionalExtension, ToSql, params, params_from_iter};

use super::rows::{instance_id_sql, seconds, timestamp_text};
use super::{
    AlarmId, BaselineRow, CapacityRow, ChangeFinish, ChangeId, InstanceRow, NewAlarm, NewChange,
    NewDecision, NewLook, PauseRow, Phase, StoreError,
};

/// One write, as queued to the writer thread.
#[derive(Debug)]
pub(crate) enum Command {
    RecordAlarm(NewAlarm),
    /// An alarm and the decision taken on its arrival.
    RecordDecidedAlarm(NewAlarm, NewDecision),
    RecordDecision(AlarmId, NewDecision, Option<NewChange>),
    MarkSubmitted(ChangeId, jiff::Timestamp),
    /// `true`: a stop interrupted the change before CloudAMQP could have it; `false`: it
    /// is about to be sent.
    MarkUnsent(ChangeId, bool),
    FinishChange(ChangeId, ChangeFinish),
    UpsertInstance(InstanceRow),
    /// A look, and the step down it starts, if any.
    RecordLook(NewLook, Option<NewChange>),
    /// What a schedule's opening did, and the change it starts, if any.
    RecordScheduleRun(super::NewScheduleRun, Option<NewChange>),
    SetBaseline(BaselineRow),
    RecordCapacity(CapacityRow),
    AddPause(PauseRow),
    /// Ends the pause with this id (`None`: every pause) not yet ended; answers how many.
    EndPauses(Option<String>, jiff::Timestamp),
    /// A write and the notifications it causes, in one transaction.
    Notifying(Box<Command>, Vec<super::NewNotification>),
    /// Notifications caused by nothing else the store holds.
    Notify(Vec<super::NewNotification>),
    RecordDelivery(super::DeliveryAttempt),
    /// Deletes one batch of what retention lets go; answers how many rows.
    Prune(super::prune::Prune),
}

/// What a command produced: the id of the row it created, if it created one.
pub(crate) type Done = Option<i64>;

/// Why a command failed. `Storage` is the database itself failing (disk full, read-only,
/// I/O): it makes the store unhealthy, and inside a batch it may have aborted the whole
/// transaction. `Refused` is a write the store will not make (an invalid transition, an
/// unknown alarm): the caller's mistake, the store is fine.
#[derive(Debug)]
pub(crate) enum Failure {
    Storage(rusqlite::Error),
    Refused(String),
}

impl From<rusqlite::Error> for Failure {
    fn from(err: rusqlite::Error) -> Self {
        match err.sqlite_error_code() {
            // A CHECK, FOREIGN KEY or NOT NULL constraint: the data, not the disk.
            Some(rusqlite::ErrorCode::ConstraintViolation) => Failure::Refused(err.to_string()),
            _ => Failure::Storage(err),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(err: StoreError) -> Self {
        Failure::Refused(match err {
            StoreError::Write(message) => message,
            other => other.to_string(),
        })
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Storage(err) => err.fmt(f),
            Failure::Refused(message) => f.write_str(message),
        }
    }
}

impl Failure {
    pub(crate) fn into_store_error(self) -> StoreError {
        match self {
            Failure::Storage(err) => StoreError::Write(err.to_string()),
            Failure::Refused(message) => StoreError::Write(message),
        }
    }
}

impl Command {
    /// A name for logs: never the parameters, which may hold alarm bodies.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Command::RecordAlarm(_) => "record_alarm",
            Command::RecordDecidedAlarm(..) => "record_decided_alarm",
            Command::RecordDecision(..) => "record_decision",
            Command::MarkSubmitted(..) => "mark_submitted",
            Command::MarkUnsent(..) => "mark_unsent",
            Command::FinishChange(..) => "finish_change",
            Command::UpsertInstance(_) => "upsert_instance",
            Command::RecordLook(..) => "record_look",
            Command::RecordScheduleRun(..) => "record_schedule_run",
            Command::SetBaseline(_) => "set_baseline",
            Command::RecordCapacity(_) => "record_capacity",
            Command::AddPause(_) => "add_pause",
            Command::EndPauses(..) => "end_pauses",
            Command::Notifying(command, _) => command.name(),
            Command::Notify(_) => "notify",
            Command::RecordDelivery(_) => "record_delivery",
            Command::Prune(_) => "prune",
        }
    }

    /// The notifications this command records: handed to the senders once committed.
    pub(crate) fn notes(&self) -> &[super::NewNotification] {
        match self {
            Command::Notifying(_, notes) | Command::Notify(notes) => notes,
            _ => &[],
        }
    }

    /// Runs the command on `conn`, which is inside a transaction the caller
    /// commits or rolls back: a command that fails half-way leaves nothing behind.
    pub(crate) fn execute(&self, conn: &Connection) -> Result<Done, Failure> {
        match self {
            Command::RecordAlarm(alarm) => record_alarm(conn, alarm, None).map(Some),
            Command::RecordDecidedAlarm(alarm, decision) => {
                record_alarm(conn, alarm, Some(decision)).map(Some)
            }
            Command::RecordDecision(alarm_id, decision, change) => {
                record_decision(conn, *alarm_id, decision, change.as_ref())
            }
            Command::MarkSubmitted(change, accepted_at) => {
                mark_submitted(conn, *change, *accepted_at).map(|()| None)
            }
            Command::MarkUnsent(change, unsent) => {
                mark_unsent(conn, *change, *unsent).map(|()| None)
            }
            Command::FinishChange(change, finish) => {
                finish_change(conn, *change, finish).map(|()| None)
            }
            Command::UpsertInstance(instance) => upsert_instance(conn, instance).map(|()| None),
            Command::RecordLook(look, change) => record_look(conn, look, change.as_ref()),
            Command::RecordScheduleRun(run, change) => {
                let change_id = change
                    .as_ref()
                    .map(|change| insert_change(conn, change))
                    .transpose()?;
                super::runs::insert(conn, run, change_id)?;
                Ok(change_id)
            }
            Command::SetBaseline(baseline) => set_baseline(conn, baseline).map(|()| None),
            Command::RecordCapacity(capacity) => record_capacity(conn, capacity).map(|()| None),
            Command::AddPause(pause) => add_pause(conn, pause).map(|()| None),
            Command::EndPauses(id, at) => end_pauses(conn, id.as_deref(), *at).map(Some),
            Command::Notifying(command, notes) => {
                let done = command.execute(conn)?;
                super::outbox::insert(conn, notes)?;
                Ok(done)
            }
            Command::Notify(notes) => super::outbox::insert(conn, notes).map(|()| None),
            Command::RecordDelivery(attempt) => {
                super::outbox::record_attempt(conn, attempt).map(|()| None)
            }
            Command::Prune(prune) => super::prune::batch(conn, prune).map(Some),
        }
    }
}

// The statements that run for every alarm (see `schema`'s migration 2: they build no
// temporary table). `decided_at` says whether an alarm is decided (the pending alarms are
// those without it); the decision columns are written with it, never apart, and both
// statements take them in `DecisionColumns`' order.
pub(crate) const INSERT_ALARM: &str = "INSERT INTO alarms (received_at, remote_addr, kind, \
    value, instance, resolved, message, triggered_at, body, decided_at, instance_id, plan, \
    decision, reason, rule, from_plan, to_plan, detail) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)";
pub(crate) const DECIDE_ALARM: &str = "UPDATE alarms SET decided_at = ?1, instance_id = ?2, \
    plan = ?3, decision = ?4, reason = ?5, rule = ?6, from_plan = ?7, to_plan = ?8, \
    detail = ?9 WHERE id = ?10 AND decided_at IS NULL";

const INSERT_CHANGE: &str = "INSERT INTO changes (instance_id, alarm_id, from_plan, \
    to_plan, rule, cooldown_seconds, dry_run, phase, intended_at, direction, kind) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'intended', ?8, ?9, ?10)";
const FINISH_CHANGE: &str = "UPDATE changes SET phase = ?1, finished_at = ?2, \
    detail = ?3, needs_attention = ?4 WHERE id = ?5 AND phase IN ('intended', 'submitted')";

/// A decision as the nine columns of `alarms` that hold it, from `decided_at` to `detail`.
struct DecisionColumns<'a> {
    decided_at: String,
    instance_id: Option<i64>,
    decision: &'a NewDecision,
}

/// How many parameters [`DecisionColumns::params`] gives.
const DECISION_COLUMNS: usize = 9;

impl<'a> DecisionColumns<'a> {
    fn new(decision: &'a NewDecision) -> Result<Self, Failure> {
        Ok(Self {
            decided_at: timestamp_text(decision.at),
            instance_id: decision.instance_id.map(instance_id_sql).transpose()?,
            decision,
        })
    }

    fn params(&self) -> [&dyn ToSql; DECISION_COLUMNS] {
        let decision = self.decision;
        [
            &self.decided_at,
            &self.instance_id,
            &decision.plan,
            &decision.kind,
            &decision.reason,
            &decision.rule,
            &decision.from_plan,
            &decision.to_plan,
            &decision.detail,
        ]
    }
}

/// Inserts `alarm`, with its decision if it is already decided.
fn record_alarm(
    conn: &Connection,
    alarm: &NewAlarm,
    decision: Option<&NewDecision>,
) -> Result<AlarmId, Failure> {
    let decision = decision.map(DecisionColumns::new).transpose()?;
    let undecided = [&Null as &dyn ToSql; DECISION_COLUMNS];
    let received_at = timestamp_text(alarm.received_at);
    let value = alarm.value.filter(|value| value.is_finite());
    let alarm_columns: [&dyn ToSql; 9] = [
        &received_at,
        &alarm.remote_addr,
        &alarm.kind,
        &value,
        &alarm.instance,
        &alarm.resolved,
        &alarm.message,
        &alarm.triggered_at,
        &alarm.body,
    ];
    let decision_columns = decision.as_ref().map_or(undecided, DecisionColumns::params);
    conn.prepare_cached(INSERT_ALARM)?
        .execute(params_from_iter(
            alarm_columns.into_iter().chain(decision_columns),
        ))?;
    Ok(conn.last_insert_rowid())
}

/// Records the decision on its alarm's row (and the change it starts, if any). An alarm is
/// decided once: a second decision is refused, as is one for an alarm that does not exist.
fn record_decision(
    conn: &Connection,
    alarm_id: AlarmId,
    decision: &NewDecision,
    change: Option<&NewChange>,
) -> Result<Done, Failure> {
    let columns = DecisionColumns::new(decision)?;
    let decided = conn
        .prepare_cached(DECIDE_ALARM)?
        .execute(params_from_iter(
            columns
                .params()
                .into_iter()
                .chain([&alarm_id as &dyn ToSql]),
        ))?;
    if decided == 0 {
        let exists = conn
            .prepare_cached("SELECT 1 FROM alarms WHERE id = ?1")?
            .query_row([alarm_id], |_| Ok(()))
            .optional()?
            .is_some();
        return Err(Failure::Refused(if exists {
            format!("alarm {alarm_id} is already decided")
        } else {
            format!("no alarm {alarm_id} to record a decision for")
        }));
    }
    change.map(|change| insert_change(conn, change)).transpose()
}

/// Inserts `change` in phase `intended` and returns its id.
fn insert_change(conn: &Connection, change: &NewChange) -> Result<ChangeId, Failure> {
    conn.prepare_cached(INSERT_CHANGE)?.execute(params![
        instance_id_sql(change.instance_id)?,
        change.alarm_id,
        change.from_plan,
        change.to_plan,
        change.rule,
        seconds(change.cooldown),
        change.dry_run,
        timestamp_text(change.intended_at),
        change.direction,
        change.kind,
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Inserts a look and the change it starts (linked to it), in the caller's transaction.
fn record_look(
    conn: &Connection,
    look: &NewLook,
    change: Option<&NewChange>,
) -> Result<Done, Failure> {
    let change_id = change
        .map(|change| insert_change(conn, change))
        .transpose()?;
    conn.prepare_cached(
        "INSERT INTO looks (instance_id, at, plan, to_plan, passed, reason, detail, \
         projected_memory_percent, decision, change_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        instance_id_sql(look.instance_id)?,
        timestamp_text(look.at),
        look.plan,
        look.to_plan,
        look.passed,
        look.reason,
        look.detail,
        look.projected_memory_percent.filter(|p| p.is_finite()),
        look.kind,
        change_id,
    ])?;
    Ok(change_id)
}

fn set_baseline(conn: &Connection, baseline: &BaselineRow) -> Result<(), Failure> {
    let since = timestamp_text(baseline.since);
    conn.prepare_cached(
        "INSERT INTO instances (id, baseline, baseline_since, updated_at) \
         VALUES (?1, ?2, ?3, ?3) \
         ON CONFLICT (id) DO UPDATE SET baseline = excluded.baseline, \
             baseline_since = excluded.baseline_since",
    )?
    .execute(params![
        instance_id_sql(baseline.instance_id)?,
        baseline.plan,
        since
    ])?;
    Ok(())
}

fn record_capacity(conn: &Connection, capacity: &CapacityRow) -> Result<(), Failure> {
    let mem_limit = i64::try_from(capacity.mem_limit).map_err(|_| {
        Failure::Refused(format!("memory limit {} is too large", capacity.mem_limit))
    })?;
    conn.prepare_cached(
        "INSERT INTO capacities (instance_id, plan, mem_limit, nodes, seen_at) \
         VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (instance_id, plan) DO UPDATE SET mem_limit = excluded.mem_limit, \
             nodes = excluded.nodes, seen_at = excluded.seen_at",
    )?
    .execute(params![
        instance_id_sql(capacity.instance_id)?,
        capacity.plan,
        mem_limit,
        capacity.nodes,
        timestamp_text(capacity.seen_at),
    ])?;
    Ok(())
}

fn mark_submitted(
    conn: &Connection,
    change: ChangeId,
    accepted_at: jiff::Timestamp,
) -> Result<(), Failure> {
    let updated = conn
        .prepare_cached(
            "UPDATE changes SET phase = 'submitted', accepted_at = ?1 \
             WHERE id = ?2 AND phase = 'intended'",
        )?
        .execute(params![timestamp_text(accepted_at), change])?;
    if updated == 0 {
        return Err(refuse_transition(conn, change, Phase::Submitted.as_str())?);
    }
    Ok(())
}

fn mark_unsent(conn: &Connection, change: ChangeId, unsent: bool) -> Result<(), Failure> {
    let updated = conn
        .prepare_cached("UPDATE changes SET unsent = ?2 WHERE id = ?1 AND phase = 'intended'")?
        .execute(params![change, unsent])?;
    if updated == 0 {
        return Err(refuse_transition(
            conn,
            change,
            "marked unsent (only an intended change is)",
        )?);
    }
    Ok(())
}

fn finish_change(
    conn: &Connection,
    change: ChangeId,
    finish: &ChangeFinish,
) -> Result<(), Failure> {
    if !finish.phase.is_final() {
        return Err(Failure::Refused(format!(
            "cannot finish change {change} in phase {}: a change finishes as completed, \
             failed or timed_out",
            finish.phase.as_str()
        )));
    }
    let updated = conn.prepare_cached(FINISH_CHANGE)?.execute(params![
        finish.phase,
        timestamp_text(finish.finished_at),
        finish.detail,
        finish.needs_attention,
        change,
    ])?;
    if updated == 0 {
        return Err(refuse_transition(conn, change, finish.phase.as_str())?);
    }
    Ok(())
}

/// Explains why a transition matched no row: the change is unknown, or already past it.
/// `to` is what the change was to become: a phase, or a mark.
fn refuse_transition(conn: &Connection, change: ChangeId, to: &str) -> Result<Failure, Failure> {
    let phase: Option<Phase> = conn
        .prepare_cached("SELECT phase FROM changes WHERE id = ?1")?
        .query_row([change], |row| row.get(0))
        .optional()?;
    Ok(Failure::Refused(match phase {
        None => format!("no change {change} to mark {to}"),
        Some(from) => format!("change {change} is {}; it cannot be {to}", from.as_str()),
    }))
}

/// A field given as `None` keeps what is stored: a caller that knows only the plan does
/// not erase the name learnt earlier.
fn upsert_instance(conn: &Connection, instance: &InstanceRow) -> Result<(), Failure> {
    conn.prepare_cached(
        "INSERT INTO instances (id, name, providerid, plan, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (id) DO UPDATE SET \
             name = coalesce(excluded.name, name), \
             providerid = coalesce(excluded.providerid, providerid), \
             plan = coalesce(excluded.plan, plan), \
             updated_at = excluded.updated_at",
    )?
    .execute(params![
        instance_id_sql(instance.id)?,
        instance.name,
        instance.providerid,
        instance.plan,
        timestamp_text(instance.updated_at),
    ])?;
    Ok(())
}

fn add_pause(conn: &Connection, pause: &PauseRow) -> Result<(), Failure> {
    let instances = serde_json::to_string(&pause.instances)
        .map_err(|e| Failure::Refused(format!("cannot store the pause's instances: {e}")))?;
    conn.prepare_cached(
        "INSERT INTO pauses (id, created_at, until, directions, instances, reason) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        pause.id,
        timestamp_text(pause.created_at),
        timestamp_text(pause.until),
        pause.directions.as_str(),
        instances,
        pause.reason,
    ])?;
    Ok(())
}

/// Sets `ended_at` on the pause `id` (every pause with `None`) not ended yet; how many.
fn end_pauses(conn: &Connection, id: Option<&str>, at: jiff::Timestamp) -> Result<i64, Failure> {
    let ended = conn
        .prepare_cached(
            "UPDATE pauses SET ended_at = ?1 WHERE ended_at IS NULL AND (?2 IS NULL OR id = ?2)",
        )?
        .execute(params![timestamp_text(at), id])?;
    Ok(i64::try_from(ended).unwrap_or(i64::MAX))
}
