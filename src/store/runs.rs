//! `schedule_runs`: what each opening of a schedule's window did on an instance.

use rusqlite::{Connection, params};

use super::commands::Failure;
use super::rows::{instance_id, instance_id_sql, timestamp, timestamp_text};
use super::{ChangeId, NewScheduleRun, ScheduleRunRow};

/// Inserts a run (linked to the change it started, if any), in the caller's transaction.
pub(crate) fn insert(
    conn: &Connection,
    run: &NewScheduleRun,
    change_id: Option<ChangeId>,
) -> Result<(), Failure> {
    conn.prepare_cached(
        "INSERT INTO schedule_runs (schedule, instance_id, opened_at, at, plan, to_plan, \
         decision, reason, detail, change_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        run.schedule,
        instance_id_sql(run.instance_id)?,
        timestamp_text(run.opened_at),
        timestamp_text(run.at),
        run.plan,
        run.to_plan,
        run.kind,
        run.reason,
        run.detail,
        change_id,
    ])?;
    Ok(())
}

/// The latest opening of each schedule that made a change on each instance.
pub(crate) fn latest_changes(conn: &Connection) -> rusqlite::Result<Vec<ScheduleRunRow>> {
    conn.prepare(
        "SELECT schedule, instance_id, max(opened_at) AS opened_at FROM schedule_runs \
         WHERE decision <> 'skip' GROUP BY instance_id, schedule ORDER BY instance_id, schedule",
    )?
    .query_map([], |row| {
        Ok(ScheduleRunRow {
            schedule: row.get("schedule")?,
            instance_id: instance_id(row, "instance_id")?,
            opened_at: timestamp(row, "opened_at")?,
        })
    })?
    .collect()
}

/// When each instance's last `keep` changes started, oldest first per instance.
pub(crate) fn change_starts(
    conn: &Connection,
    keep: u32,
) -> rusqlite::Result<Vec<(u64, jiff::Timestamp)>> {
    conn.prepare(
        "SELECT instance_id, intended_at FROM ( \
           SELECT instance_id, intended_at, row_number() OVER ( \
             PARTITION BY instance_id ORDER BY intended_at DESC, id DESC) AS n FROM changes) \
         WHERE n <= ?1 ORDER BY instance_id, intended_at",
    )?
    .query_map([keep], |row| {
        Ok((
            instance_id(row, "instance_id")?,
            timestamp(row, "intended_at")?,
        ))
    })?
    .collect()
}
