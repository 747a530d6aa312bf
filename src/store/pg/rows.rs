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
use crate::store::{ChangeRow, Phase};

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

fn direction(word: &str) -> Result<Direction, PgError> {
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
