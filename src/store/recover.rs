//! What the previous run left behind, read once at open before the writer starts.
//!
//! Each query is served by an index (`alarms_undecided`, `changes_open`,
//! `changes_finished`, `alarms_by_instance`), so start-up stays quick however long the
//! history grows.

use rusqlite::Connection;

use super::rows::{change_row, decision_row, instance_row, timestamp};
use super::{PendingAlarm, Recovered};

pub(crate) fn read(conn: &Connection) -> rusqlite::Result<Recovered> {
    // One read transaction: the five lists describe the same moment.
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
        last_decisions: tx
            .prepare("SELECT * FROM latest_decisions ORDER BY instance_id")?
            .query_map([], decision_row)?
            .collect::<rusqlite::Result<_>>()?,
        instances: tx
            .prepare("SELECT * FROM instances ORDER BY id")?
            .query_map([], instance_row)?
            .collect::<rusqlite::Result<_>>()?,
    };
    tx.commit()?;
    Ok(recovered)
}
