//! Conversions between our types and PostgreSQL's column values.
//!
//! Timestamps travel as `SystemTime` (tokio-postgres maps it to `timestamptz` without an
//! extra feature; it has none for jiff 1): PostgreSQL keeps microseconds, so a nanosecond
//! part is cut. Words (`phase`, `direction`, `kind`) are the SQLite store's.

use std::time::{Duration, SystemTime};

use jiff::Timestamp;
use tokio_postgres::Row;

use super::PgError;
use crate::decide::{ChangeKind, Direction};
use crate::store::rows::duration_from_seconds;
use crate::store::{
    BaselineRow, CapacityRow, ChangeRow, DecisionKind, DecisionRow, InstanceRow, LookRow, PauseRow,
    Phase,
};

/// A timestamp as a `timestamptz` parameter.
pub(super) fn db_time(at: Timestamp) -> Result<SystemTime, PgError> {
    SystemTime::try_from(at)
        .map_err(|err| PgError::Refused(format!("timestamp {at} is out of range: {err}")))
}

/// Instance ids are `u64` in our types and `bigint` here; CloudAMQP's are far below
/// `i64::MAX`, so a larger one is refused rather than wrapped.
pub(super) fn db_instance_id(id: u64) -> Result<i64, PgError> {
    i64::try_from(id).map_err(|_| PgError::Refused(format!("instance id {id} is too large")))
}

/// A lease or claim length as the `double precision` seconds `make_interval` takes; a
/// zero lease would be over before it began.
pub(super) fn db_seconds(lease: Duration) -> Result<f64, PgError> {
    if lease.is_zero() {
        return Err(PgError::Refused("a lease must be longer than zero".into()));
    }
    Ok(lease.as_secs_f64())
}

/// A count (`LIMIT`) as `bigint`.
pub(super) fn db_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

pub(super) fn timestamp(row: &Row, column: &str) -> Result<Timestamp, PgError> {
    let at: SystemTime = row.try_get(column)?;
    from_system_time(column, at)
}

pub(super) fn optional_timestamp(row: &Row, column: &str) -> Result<Option<Timestamp>, PgError> {
    let at: Option<SystemTime> = row.try_get(column)?;
    at.map(|at| from_system_time(column, at)).transpose()
}

fn from_system_time(column: &str, at: SystemTime) -> Result<Timestamp, PgError> {
    Timestamp::try_from(at)
        .map_err(|err| PgError::Refused(format!("{column} is out of range: {err}")))
}

pub(super) fn instance_id(row: &Row, column: &str) -> Result<u64, PgError> {
    let id: i64 = row.try_get(column)?;
    u64::try_from(id).map_err(|_| PgError::Refused(format!("{column} {id} is negative")))
}

/// The word stored in `changes.phase`, read back.
pub(super) fn phase(word: &str) -> Result<Phase, PgError> {
    Ok(match word {
        "intended" => Phase::Intended,
        "submitted" => Phase::Submitted,
        "completed" => Phase::Completed,
        "failed" => Phase::Failed,
        "timed_out" => Phase::TimedOut,
        _ => return Err(unknown("phase", word)),
    })
}

pub(super) fn direction(word: &str) -> Result<Direction, PgError> {
    match word {
        "up" => Ok(Direction::Up),
        "down" => Ok(Direction::Down),
        _ => Err(unknown("direction", word)),
    }
}

fn unknown(what: &str, word: &str) -> PgError {
    PgError::Refused(format!("unknown {what} {word:?} in the state database"))
}

/// A `changes` row, selected with `changes.*` (or `RETURNING c.*`).
pub(super) fn change_row(row: &Row) -> Result<ChangeRow, PgError> {
    let kind: String = row.try_get("kind")?;
    let phase_word: String = row.try_get("phase")?;
    let direction_word: String = row.try_get("direction")?;
    let cooldown: f64 = row.try_get("cooldown_seconds")?;
    Ok(ChangeRow {
        id: row.try_get("id")?,
        instance_id: instance_id(row, "instance_id")?,
        alarm_id: row.try_get("alarm_id")?,
        from_plan: row.try_get("from_plan")?,
        to_plan: row.try_get("to_plan")?,
        rule: row.try_get("rule")?,
        cooldown: duration_from_seconds(cooldown),
        direction: direction(&direction_word)?,
        kind: ChangeKind::from_name(&kind).ok_or_else(|| unknown("change kind", &kind))?,
        dry_run: row.try_get("dry_run")?,
        phase: phase(&phase_word)?,
        intended_at: timestamp(row, "intended_at")?,
        accepted_at: optional_timestamp(row, "accepted_at")?,
        finished_at: optional_timestamp(row, "finished_at")?,
        detail: row.try_get("detail")?,
        needs_attention: row.try_get("needs_attention")?,
        unsent: row.try_get("unsent")?,
    })
}

pub(super) fn optional_instance_id(row: &Row, column: &str) -> Result<Option<u64>, PgError> {
    let id: Option<i64> = row.try_get(column)?;
    id.map(|id| {
        u64::try_from(id).map_err(|_| PgError::Refused(format!("{column} {id} is negative")))
    })
    .transpose()
}

fn decision_kind(word: &str) -> Result<DecisionKind, PgError> {
    Ok(match word {
        "change" => DecisionKind::Change,
        "would_change" => DecisionKind::WouldChange,
        "skip" => DecisionKind::Skip,
        _ => return Err(unknown("decision", word)),
    })
}

/// A `decisions` (or `latest_decisions`) row.
pub(super) fn decision_row(row: &Row) -> Result<DecisionRow, PgError> {
    let kind: String = row.try_get("decision")?;
    Ok(DecisionRow {
        alarm_id: row.try_get("alarm_id")?,
        at: timestamp(row, "at")?,
        instance_id: instance_id(row, "instance_id")?,
        kind: decision_kind(&kind)?,
        reason: row.try_get("reason")?,
        rule: row.try_get("rule")?,
        from_plan: row.try_get("from_plan")?,
        to_plan: row.try_get("to_plan")?,
        detail: row.try_get("detail")?,
    })
}

/// An `instances` row.
pub(super) fn instance_row(row: &Row) -> Result<InstanceRow, PgError> {
    Ok(InstanceRow {
        id: instance_id(row, "id")?,
        name: row.try_get("name")?,
        providerid: row.try_get("providerid")?,
        plan: row.try_get("plan")?,
        updated_at: timestamp(row, "updated_at")?,
    })
}

/// An `instances` row whose `baseline` is set.
pub(super) fn baseline_row(row: &Row) -> Result<BaselineRow, PgError> {
    Ok(BaselineRow {
        instance_id: instance_id(row, "id")?,
        plan: row.try_get("baseline")?,
        since: timestamp(row, "baseline_since")?,
    })
}

/// A `capacities` row.
pub(super) fn capacity_row(row: &Row) -> Result<CapacityRow, PgError> {
    let mem_limit: i64 = row.try_get("mem_limit")?;
    let nodes: i32 = row.try_get("nodes")?;
    Ok(CapacityRow {
        instance_id: instance_id(row, "instance_id")?,
        plan: row.try_get("plan")?,
        mem_limit: u64::try_from(mem_limit).unwrap_or(0),
        nodes: u32::try_from(nodes).unwrap_or(0),
        seen_at: timestamp(row, "seen_at")?,
    })
}

/// A `looks` row.
pub(super) fn look_row(row: &Row) -> Result<LookRow, PgError> {
    Ok(LookRow {
        instance_id: instance_id(row, "instance_id")?,
        at: timestamp(row, "at")?,
        plan: row.try_get("plan")?,
        to_plan: row.try_get("to_plan")?,
        passed: row.try_get("passed")?,
        reason: row.try_get("reason")?,
        detail: row.try_get("detail")?,
        projected_memory_percent: row.try_get("projected_memory_percent")?,
    })
}

/// A `pauses` row, its `instances` selected as text (`instances::text AS instances`).
pub(super) fn pause_row(row: &Row) -> Result<PauseRow, PgError> {
    let directions: String = row.try_get("directions")?;
    let instances: String = row.try_get("instances")?;
    Ok(PauseRow {
        id: row.try_get("id")?,
        created_at: timestamp(row, "created_at")?,
        until: timestamp(row, "until")?,
        directions: crate::decide::Directions::from_name(&directions)
            .ok_or_else(|| unknown("pause directions", &directions))?,
        instances: serde_json::from_str(&instances).map_err(|err| {
            PgError::Refused(format!(
                "pauses.instances is not a JSON list of strings: {err}"
            ))
        })?,
        reason: row.try_get("reason")?,
    })
}
