//! What the previous run left behind, read once at open before the writer starts.
//!
//! Each query is served by an index (`alarms_undecided`, `changes_open`,
//! `changes_finished`, `alarms_by_instance`), so start-up stays quick however long the
//! history grows.

use rusqlite::Connection;

use super::rows::{
    baseline_row, capacity_row, change_row, decision_row, instance_id, instance_row, look_row,
    pause_row, timestamp,
};
use super::{PendingAlarm, Recovered};

pub(crate) fn read(conn: &Connection) -> rusqlite::Result<Recovered> {
    // One read transaction: the lists describe the same moment.
    let tx = conn.unchecked_transaction()?;
    let recovered = Recovered {
        pending_alarms: tx
            .prepare(
                "SELECT id, received_at, body FROM alarms WHERE decided_at IS NULL \
                 ORDER BY received_at, id",
            )?
            .query_map([], |row| {
                Ok(PendingAlarm {
                    id: row.get("id")?,
                    received_at: timestamp(row, "received_at")?,
                    body: row.get("body")?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?,
        open_changes: tx
            .prepare("SELECT * FROM changes WHERE phase IN ('intended', 'submitted') ORDER BY id")?
            .query_map([], change_row)?
            .collect::<rusqlite::Result<_>>()?,
        last_finished: tx
            .prepare("SELECT * FROM latest_finished_changes ORDER BY instance_id")?
            .query_map([], change_row)?
            .collect::<rusqlite::Result<_>>()?,
        last_finished_plans: tx
            .prepare(
                "SELECT c.* FROM (SELECT DISTINCT instance_id FROM changes \
                   WHERE finished_at IS NOT NULL AND kind = 'plan') AS i \
                 JOIN changes AS c ON c.id = (SELECT id FROM changes \
                   WHERE instance_id = i.instance_id AND finished_at IS NOT NULL AND kind = 'plan' \
                   ORDER BY finished_at DESC, id DESC LIMIT 1) \
                 ORDER BY c.instance_id",
            )?
            .query_map([], change_row)?
            .collect::<rusqlite::Result<_>>()?,
        last_decisions: tx
            .prepare("SELECT * FROM latest_decisions ORDER BY instance_id")?
            .query_map([], decision_row)?
            .collect::<rusqlite::Result<_>>()?,
        instances: tx
            .prepare("SELECT * FROM instances ORDER BY id")?
            .query_map([], instance_row)?
            .collect::<rusqlite::Result<_>>()?,
        baselines: tx
            .prepare("SELECT * FROM instances WHERE baseline IS NOT NULL ORDER BY id")?
            .query_map([], baseline_row)?
            .collect::<rusqlite::Result<_>>()?,
        last_by_direction: tx
            .prepare(
                "SELECT instance_id, direction, max(finished_at) AS finished_at FROM changes \
                 WHERE finished_at IS NOT NULL AND kind = 'plan' GROUP BY instance_id, direction",
            )?
            .query_map([], |row| {
                Ok((
                    instance_id(row, "instance_id")?,
                    row.get("direction")?,
                    timestamp(row, "finished_at")?,
                ))
            })?
            .collect::<rusqlite::Result<_>>()?,
        last_disk: tx
            .prepare(
                "SELECT instance_id, max(finished_at) AS finished_at, \
                   (SELECT to_plan FROM changes AS d WHERE d.instance_id = c.instance_id \
                      AND d.kind = 'disk' AND d.phase = 'completed' AND d.dry_run = 0 \
                    ORDER BY d.finished_at DESC, d.id DESC LIMIT 1) AS size \
                 FROM changes AS c WHERE finished_at IS NOT NULL AND kind = 'disk' \
                 GROUP BY instance_id",
            )?
            .query_map([], |row| {
                let size: Option<String> = row.get("size")?;
                Ok((
                    instance_id(row, "instance_id")?,
                    timestamp(row, "finished_at")?,
                    size.and_then(|size| size.parse().ok()),
                ))
            })?
            .collect::<rusqlite::Result<_>>()?,
        ups: tx
            .prepare(
                "SELECT c.* FROM changes AS c JOIN instances AS i ON i.id = c.instance_id \
                 WHERE c.kind = 'plan' AND c.direction = 'up' AND c.phase = 'completed' \
                   AND c.dry_run = 0 \
                   AND (i.baseline_since IS NULL OR c.finished_at > i.baseline_since) \
                 ORDER BY c.finished_at, c.id",
            )?
            .query_map([], change_row)?
            .collect::<rusqlite::Result<_>>()?,
        // Newest first along `alarms_by_instance`: one step per instance.
        last_alarms: tx
            .prepare(
                "SELECT i.id AS instance_id, (SELECT a.received_at FROM alarms AS a \
                   WHERE a.instance_id = i.id AND a.resolved = 0 \
                   ORDER BY a.decided_at DESC, a.id DESC LIMIT 1) AS received_at \
                 FROM instances AS i",
            )?
            .query_map([], |row| {
                let at: Option<String> = row.get("received_at")?;
                Ok(match at {
                    Some(_) => Some((
                        instance_id(row, "instance_id")?,
                        timestamp(row, "received_at")?,
                    )),
                    None => None,
                })
            })?
            .filter_map(Result::transpose)
            .collect::<rusqlite::Result<_>>()?,
        capacities: tx
            .prepare("SELECT * FROM capacities ORDER BY instance_id, plan")?
            .query_map([], capacity_row)?
            .collect::<rusqlite::Result<_>>()?,
        last_looks: tx
            .prepare(
                "SELECT * FROM looks WHERE id IN (SELECT max(id) FROM looks GROUP BY instance_id) \
                 ORDER BY instance_id",
            )?
            .query_map([], look_row)?
            .collect::<rusqlite::Result<_>>()?,
        change_starts: super::runs::change_starts(&tx, crate::rules::MAX_CHANGES_COUNT)?,
        schedule_runs: super::runs::latest_changes(&tx)?,
        pauses: tx
            .prepare("SELECT * FROM pauses WHERE ended_at IS NULL ORDER BY until, created_at")?
            .query_map([], pause_row)?
            .collect::<rusqlite::Result<_>>()?,
        pending_deliveries: super::outbox::recover_pending(&tx)?,
        dropped_deliveries: super::outbox::count_dropped(&tx)?,
        notices: super::outbox::recover_notices(&tx)?,
        world: None,
    };
    tx.commit()?;
    Ok(recovered)
}
