//! Conversions between our types and the column values a human reads in `sqlite3`.
//!
//! Timestamps are RFC 3339 UTC text with exactly nine fractional digits: nothing is lost
//! (jiff timestamps are nanosecond-precise), and because every value has the same width,
//! text order is time order, so `ORDER BY finished_at` is right and SQLite's own date
//! functions (`datetime(received_at)`) read them. Enums are lowercase words, booleans 0/1.

use std::time::Duration;

use jiff::Timestamp;
use rusqlite::Row;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use super::{
    BaselineRow, CapacityRow, ChangeRow, DecisionKind, DecisionRow, Direction, InstanceRow,
    LookRow, PauseRow, Phase, StoreError,
};

/// `2026-11-26T17:00:00.000000000Z`: fixed width, so text order is time order.
pub(crate) fn timestamp_text(at: Timestamp) -> String {
    format!("{at:.9}")
}

/// Reads a timestamp column; a value a human edited into nonsense is a conversion error
/// naming the column rather than a panic.
pub(crate) fn timestamp(row: &Row<'_>, column: &str) -> rusqlite::Result<Timestamp> {
    let text: String = row.get(column)?;
    parse_timestamp(row, column, &text)
}

pub(crate) fn optional_timestamp(
    row: &Row<'_>,
    column: &str,
) -> rusqlite::Result<Option<Timestamp>> {
    let text: Option<String> = row.get(column)?;
    text.map(|text| parse_timestamp(row, column, &text))
        .transpose()
}

fn parse_timestamp(row: &Row<'_>, column: &str, text: &str) -> rusqlite::Result<Timestamp> {
    text.parse().map_err(|err: jiff::Error| {
        let index = row.as_ref().column_index(column).unwrap_or(0);
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Text,
            format!("{column} {text:?} is not an RFC 3339 timestamp: {err}").into(),
        )
    })
}

/// Instance ids are `u64` in our types and `INTEGER` (i64) in SQLite; CloudAMQP's ids are
/// far below `i64::MAX`, so an id above it is refused rather than wrapped.
pub(crate) fn instance_id_sql(id: u64) -> Result<i64, StoreError> {
    i64::try_from(id)
        .map_err(|_| StoreError::Write(format!("instance id {id} is too large to store")))
}

pub(crate) fn instance_id(row: &Row<'_>, column: &str) -> rusqlite::Result<u64> {
    let id: i64 = row.get(column)?;
    u64::try_from(id).map_err(|_| {
        let index = row.as_ref().column_index(column).unwrap_or(0);
        rusqlite::Error::IntegralValueOutOfRange(index, id)
    })
}

pub(crate) fn optional_instance_id(row: &Row<'_>, column: &str) -> rusqlite::Result<Option<u64>> {
    let id: Option<i64> = row.get(column)?;
    id.map(|id| {
        u64::try_from(id).map_err(|_| {
            let index = row.as_ref().column_index(column).unwrap_or(0);
            rusqlite::Error::IntegralValueOutOfRange(index, id)
        })
    })
    .transpose()
}

/// Cooldowns are stored as seconds in a `NUMERIC` column: `1800` for 30 minutes reads well,
/// and a sub-second cooldown (tests, demos) survives as `0.5`.
pub(crate) fn seconds(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

/// Rounds to the nanosecond so `0.2` (not exact in binary) reads back as exactly 200ms.
pub(crate) fn duration_from_seconds(seconds: f64) -> Duration {
    if seconds.is_finite() && seconds > 0.0 {
        Duration::try_from_secs_f64((seconds * 1e9).round() / 1e9).unwrap_or(Duration::MAX)
    } else {
        Duration::ZERO
    }
}

impl Phase {
    /// The word stored in `changes.phase`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Intended => "intended",
            Phase::Submitted => "submitted",
            Phase::Completed => "completed",
            Phase::Failed => "failed",
            Phase::TimedOut => "timed_out",
        }
    }

    /// Whether the change has ended (completed, failed or timed out).
    pub fn is_final(self) -> bool {
        matches!(self, Phase::Completed | Phase::Failed | Phase::TimedOut)
    }

    fn from_word(word: &str) -> Option<Phase> {
        Some(match word {
            "intended" => Phase::Intended,
            "submitted" => Phase::Submitted,
            "completed" => Phase::Completed,
            "failed" => Phase::Failed,
            "timed_out" => Phase::TimedOut,
            _ => return None,
        })
    }
}

impl DecisionKind {
    /// The word stored in `decisions.decision`.
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::Change => "change",
            DecisionKind::WouldChange => "would_change",
            DecisionKind::Skip => "skip",
        }
    }

    fn from_word(word: &str) -> Option<DecisionKind> {
        Some(match word {
            "change" => DecisionKind::Change,
            "would_change" => DecisionKind::WouldChange,
            "skip" => DecisionKind::Skip,
            _ => return None,
        })
    }
}

impl ToSql for Phase {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for Phase {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let word = value.as_str()?;
        Phase::from_word(word).ok_or_else(|| unknown_word("phase", word))
    }
}

impl ToSql for DecisionKind {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for DecisionKind {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let word = value.as_str()?;
        DecisionKind::from_word(word).ok_or_else(|| unknown_word("decision", word))
    }
}

impl ToSql for Direction {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for Direction {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        match value.as_str()? {
            "up" => Ok(Direction::Up),
            "down" => Ok(Direction::Down),
            word => Err(unknown_word("direction", word)),
        }
    }
}

impl ToSql for crate::decide::ChangeKind {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for crate::decide::ChangeKind {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let word = value.as_str()?;
        Self::from_name(word).ok_or_else(|| unknown_word("change kind", word))
    }
}

fn unknown_word(what: &str, word: &str) -> FromSqlError {
    FromSqlError::Other(format!("unknown {what} {word:?}").into())
}

/// A `changes` row, selected with `SELECT * FROM changes` (or a view of the same columns).
pub(crate) fn change_row(row: &Row<'_>) -> rusqlite::Result<ChangeRow> {
    Ok(ChangeRow {
        id: row.get("id")?,
        instance_id: instance_id(row, "instance_id")?,
        alarm_id: row.get("alarm_id")?,
        from_plan: row.get("from_plan")?,
        to_plan: row.get("to_plan")?,
        rule: row.get("rule")?,
        cooldown: duration_from_seconds(row.get("cooldown_seconds")?),
        direction: row.get("direction")?,
        kind: row.get("kind")?,
        dry_run: row.get("dry_run")?,
        phase: row.get("phase")?,
        intended_at: timestamp(row, "intended_at")?,
        accepted_at: optional_timestamp(row, "accepted_at")?,
        finished_at: optional_timestamp(row, "finished_at")?,
        detail: row.get("detail")?,
        needs_attention: row.get("needs_attention")?,
        unsent: row.get("unsent")?,
    })
}

/// A decision (a row of the `decisions` view) whose `instance_id` is not NULL.
pub(crate) fn decision_row(row: &Row<'_>) -> rusqlite::Result<DecisionRow> {
    Ok(DecisionRow {
        alarm_id: row.get("alarm_id")?,
        at: timestamp(row, "at")?,
        instance_id: instance_id(row, "instance_id")?,
        kind: row.get("decision")?,
        reason: row.get("reason")?,
        rule: row.get("rule")?,
        from_plan: row.get("from_plan")?,
        to_plan: row.get("to_plan")?,
        detail: row.get("detail")?,
    })
}

pub(crate) fn instance_row(row: &Row<'_>) -> rusqlite::Result<InstanceRow> {
    Ok(InstanceRow {
        id: instance_id(row, "id")?,
        name: row.get("name")?,
        providerid: row.get("providerid")?,
        plan: row.get("plan")?,
        updated_at: timestamp(row, "updated_at")?,
    })
}

/// A `looks` row.
pub(crate) fn look_row(row: &Row<'_>) -> rusqlite::Result<LookRow> {
    Ok(LookRow {
        instance_id: instance_id(row, "instance_id")?,
        at: timestamp(row, "at")?,
        plan: row.get("plan")?,
        to_plan: row.get("to_plan")?,
        passed: row.get("passed")?,
        reason: row.get("reason")?,
        detail: row.get("detail")?,
        projected_memory_percent: row.get("projected_memory_percent")?,
    })
}

/// A `pauses` row. A `directions` or `instances` a human edited into nonsense is a
/// conversion error naming the column.
pub(crate) fn pause_row(row: &Row<'_>) -> rusqlite::Result<PauseRow> {
    let bad = |column: &str, why: String| {
        let index = row.as_ref().column_index(column).unwrap_or(0);
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Text,
            format!("pauses.{column}: {why}").into(),
        )
    };
    let directions: String = row.get("directions")?;
    let instances: String = row.get("instances")?;
    Ok(PauseRow {
        id: row.get("id")?,
        created_at: timestamp(row, "created_at")?,
        until: timestamp(row, "until")?,
        directions: crate::decide::Directions::from_name(&directions).ok_or_else(|| {
            bad(
                "directions",
                format!("{directions:?} is not up, down or both"),
            )
        })?,
        instances: serde_json::from_str(&instances)
            .map_err(|e| bad("instances", format!("not a JSON list of strings: {e}")))?,
        reason: row.get("reason")?,
    })
}

/// A `capacities` row.
pub(crate) fn capacity_row(row: &Row<'_>) -> rusqlite::Result<CapacityRow> {
    let mem_limit: i64 = row.get("mem_limit")?;
    Ok(CapacityRow {
        instance_id: instance_id(row, "instance_id")?,
        plan: row.get("plan")?,
        mem_limit: u64::try_from(mem_limit).unwrap_or(0),
        nodes: row.get("nodes")?,
        seen_at: timestamp(row, "seen_at")?,
    })
}

/// An `instances` row whose `baseline` is set.
pub(crate) fn baseline_row(row: &Row<'_>) -> rusqlite::Result<BaselineRow> {
    Ok(BaselineRow {
        instance_id: instance_id(row, "id")?,
        plan: row.get("baseline")?,
        since: timestamp(row, "baseline_since")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_fixed_width_so_text_order_is_time_order() {
        let whole: Timestamp = "2026-11-26T17:00:00Z".parse().unwrap();
        let later: Timestamp = "2026-11-26T17:00:00.5Z".parse().unwrap();
        assert_eq!(timestamp_text(whole), "2026-11-26T17:00:00.000000000Z");
        assert_eq!(timestamp_text(later), "2026-11-26T17:00:00.500000000Z");
        assert!(timestamp_text(whole) < timestamp_text(later));
        let precise: Timestamp = "2026-11-26T17:00:00.123456789Z".parse().unwrap();
        assert_eq!(
            timestamp_text(precise).parse::<Timestamp>().unwrap(),
            precise
        );
    }

    #[test]
    fn cooldowns_round_trip_through_seconds() {
        for duration in [
            Duration::ZERO,
            Duration::from_millis(200),
            Duration::from_millis(1100),
            Duration::from_secs(1800),
            Duration::from_secs(86_400 * 30),
        ] {
            assert_eq!(duration_from_seconds(seconds(duration)), duration);
        }
        assert_eq!(duration_from_seconds(f64::NAN), Duration::ZERO);
        assert_eq!(duration_from_seconds(-1.0), Duration::ZERO);
    }

    #[test]
    fn words_round_trip() {
        for phase in [
            Phase::Intended,
            Phase::Submitted,
            Phase::Completed,
            Phase::Failed,
            Phase::TimedOut,
        ] {
            assert_eq!(Phase::from_word(phase.as_str()), Some(phase));
        }
        for kind in [
            DecisionKind::Change,
            DecisionKind::WouldChange,
            DecisionKind::Skip,
        ] {
            assert_eq!(DecisionKind::from_word(kind.as_str()), Some(kind));
        }
        assert_eq!(Phase::from_word("Completed"), None);
    }

    #[test]
    fn instance_ids_beyond_i64_are_refused() {
        assert_eq!(instance_id_sql(359_559).unwrap(), 359_559);
        assert!(matches!(
            instance_id_sql(u64::MAX),
            Err(StoreError::Write(_))
        ));
    }
}
