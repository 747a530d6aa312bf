//! What the replicas left behind, read at start-up: the SQLite store's
//! `crate::store::recover` on PostgreSQL, field for field.
//!
//! One `REPEATABLE READ` read-only transaction, so every list describes the same moment
//! (one snapshot) even while other replicas write. The statements are the SQLite ones in
//! PostgreSQL's dialect: booleans are `false`, a subquery in `FROM` has an alias, a
//! newest-first order by a nullable column says `NULLS LAST` (SQLite's order), and a text
//! order is byte order (`COLLATE "C"`, SQLite's `BINARY`), not the database's locale.

use tokio_postgres::{Client, IsolationLevel, Row, Transaction};

use super::PgError;
use super::rows::{
    baseline_row, capacity_row, change_row, db_limit, decision_row, direction, instance_id,
    instance_row, look_row, optional_instance_id, pause_row, timestamp,
};
use crate::store::{NoticeRow, PendingAlarm, PendingDelivery, Recovered, ScheduleRunRow};

const PENDING_ALARMS: &str = "SELECT id, received_at, body FROM alarms \
    WHERE decided_at IS NULL ORDER BY received_at, id";
const OPEN_CHANGES: &str =
    "SELECT * FROM changes WHERE phase IN ('intended', 'submitted') ORDER BY id";
const LAST_FINISHED: &str = "SELECT * FROM latest_finished_changes ORDER BY instance_id";
const LAST_FINISHED_PLANS: &str = "SELECT DISTINCT ON (instance_id) * FROM changes \
    WHERE finished_at IS NOT NULL AND kind = 'plan' \
    ORDER BY instance_id, finished_at DESC, id DESC";
const LAST_DECISIONS: &str = "SELECT * FROM latest_decisions ORDER BY instance_id";
const INSTANCES: &str = "SELECT * FROM instances ORDER BY id";
const BASELINES: &str = "SELECT * FROM instances WHERE baseline IS NOT NULL ORDER BY id";
// SQLite's GROUP BY answers in group order; the same order here.
const LAST_BY_DIRECTION: &str = "SELECT instance_id, direction, max(finished_at) AS finished_at \
    FROM changes WHERE finished_at IS NOT NULL AND kind = 'plan' \
    GROUP BY instance_id, direction ORDER BY instance_id, direction COLLATE \"C\"";
const LAST_DISK: &str = "SELECT instance_id, max(finished_at) AS finished_at, \
    (SELECT to_plan FROM changes AS d WHERE d.instance_id = c.instance_id \
       AND d.kind = 'disk' AND d.phase = 'completed' AND NOT d.dry_run \
     ORDER BY d.finished_at DESC NULLS LAST, d.id DESC LIMIT 1) AS size \
    FROM changes AS c WHERE finished_at IS NOT NULL AND kind = 'disk' \
    GROUP BY instance_id ORDER BY instance_id";
const UPS: &str = "SELECT c.* FROM changes AS c JOIN instances AS i ON i.id = c.instance_id \
    WHERE c.kind = 'plan' AND c.direction = 'up' AND c.phase = 'completed' \
      AND NOT c.dry_run \
      AND (i.baseline_since IS NULL OR c.finished_at > i.baseline_since) \
    ORDER BY c.finished_at, c.id";
const LAST_ALARMS: &str = "SELECT i.id AS instance_id, (SELECT a.received_at FROM alarms AS a \
      WHERE a.instance_id = i.id AND NOT a.resolved \
      ORDER BY a.decided_at DESC NULLS LAST, a.id DESC LIMIT 1) AS received_at \
    FROM instances AS i ORDER BY i.id";
const CAPACITIES: &str = "SELECT * FROM capacities ORDER BY instance_id, plan COLLATE \"C\"";
const LAST_LOOKS: &str = "SELECT * FROM looks \
    WHERE id IN (SELECT max(id) FROM looks GROUP BY instance_id) ORDER BY instance_id";
const CHANGE_STARTS: &str = "SELECT instance_id, intended_at FROM ( \
      SELECT instance_id, intended_at, row_number() OVER ( \
        PARTITION BY instance_id ORDER BY intended_at DESC, id DESC) AS n FROM changes) AS s \
    WHERE n <= $1 ORDER BY instance_id, intended_at";
const SCHEDULE_RUNS: &str = "SELECT schedule, instance_id, max(opened_at) AS opened_at \
    FROM schedule_runs WHERE decision <> 'skip' GROUP BY instance_id, schedule \
    ORDER BY instance_id, schedule COLLATE \"C\"";
const PAUSES: &str = "SELECT id, created_at, until, directions, instances::text AS instances, \
    reason FROM pauses WHERE ended_at IS NULL ORDER BY until, created_at";
const PENDING_DELIVERIES: &str = "SELECT n.event_id, d.sink, n.instance_id, n.at, \
      n.body::text AS body, d.attempts \
    FROM deliveries AS d JOIN notifications AS n ON n.id = d.notification_id \
    WHERE d.state = 'pending' ORDER BY n.id, d.sink COLLATE \"C\"";
const DROPPED_DELIVERIES: &str = "SELECT count(*) FROM deliveries WHERE state = 'dropped'";
const NOTICES: &str = "SELECT instance_id, kind, reason, at FROM notifications WHERE id IN ( \
      SELECT max(id) FROM notifications \
       WHERE instance_id IS NOT NULL AND kind IN ('change.blocked', 'ladder.top') \
       GROUP BY instance_id, kind) \
    ORDER BY instance_id, kind COLLATE \"C\"";

/// Reads everything start-up needs, as one snapshot.
pub async fn recover(client: &mut Client) -> Result<Recovered, PgError> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let keep = db_limit(crate::rules::MAX_CHANGES_COUNT as usize);
    let world: i64 = tx
        .query_one("SELECT version FROM world", &[])
        .await?
        .try_get("version")?;
    let recovered = Recovered {
        world: Some(world),
        pending_alarms: rows(&tx, PENDING_ALARMS, |row| {
            Ok(PendingAlarm {
                id: row.try_get("id")?,
                received_at: timestamp(row, "received_at")?,
                body: row.try_get("body")?,
            })
        })
        .await?,
        open_changes: rows(&tx, OPEN_CHANGES, change_row).await?,
        last_finished: rows(&tx, LAST_FINISHED, change_row).await?,
        last_finished_plans: rows(&tx, LAST_FINISHED_PLANS, change_row).await?,
        last_decisions: rows(&tx, LAST_DECISIONS, decision_row).await?,
        instances: rows(&tx, INSTANCES, instance_row).await?,
        baselines: rows(&tx, BASELINES, baseline_row).await?,
        last_by_direction: rows(&tx, LAST_BY_DIRECTION, |row| {
            let word: String = row.try_get("direction")?;
            Ok((
                instance_id(row, "instance_id")?,
                direction(&word)?,
                timestamp(row, "finished_at")?,
            ))
        })
        .await?,
        last_disk: rows(&tx, LAST_DISK, |row| {
            let size: Option<String> = row.try_get("size")?;
            Ok((
                instance_id(row, "instance_id")?,
                timestamp(row, "finished_at")?,
                size.and_then(|size| size.parse().ok()),
            ))
        })
        .await?,
        ups: rows(&tx, UPS, change_row).await?,
        last_alarms: rows(&tx, LAST_ALARMS, |row| {
            let at: Option<std::time::SystemTime> = row.try_get("received_at")?;
            at.map(|_| {
                Ok((
                    instance_id(row, "instance_id")?,
                    timestamp(row, "received_at")?,
                ))
            })
            .transpose()
        })
        .await?
        .into_iter()
        .flatten()
        .collect(),
        capacities: rows(&tx, CAPACITIES, capacity_row).await?,
        last_looks: rows(&tx, LAST_LOOKS, look_row).await?,
        change_starts: {
            tx.query(CHANGE_STARTS, &[&keep])
                .await?
                .iter()
                .map(|row| {
                    Ok((
                        instance_id(row, "instance_id")?,
                        timestamp(row, "intended_at")?,
                    ))
                })
                .collect::<Result<_, PgError>>()?
        },
        schedule_runs: rows(&tx, SCHEDULE_RUNS, |row| {
            Ok(ScheduleRunRow {
                schedule: row.try_get("schedule")?,
                instance_id: instance_id(row, "instance_id")?,
                opened_at: timestamp(row, "opened_at")?,
            })
        })
        .await?,
        pauses: rows(&tx, PAUSES, pause_row).await?,
        pending_deliveries: rows(&tx, PENDING_DELIVERIES, |row| {
            let attempts: i32 = row.try_get("attempts")?;
            Ok(PendingDelivery {
                event_id: row.try_get("event_id")?,
                sink: row.try_get("sink")?,
                instance_id: optional_instance_id(row, "instance_id")?,
                at: timestamp(row, "at")?,
                body: row.try_get("body")?,
                attempts: u32::try_from(attempts).unwrap_or(0),
            })
        })
        .await?,
        dropped_deliveries: {
            let count: i64 = tx.query_one(DROPPED_DELIVERIES, &[]).await?.try_get(0)?;
            count.unsigned_abs()
        },
        notices: rows(&tx, NOTICES, |row| {
            Ok(NoticeRow {
                instance_id: instance_id(row, "instance_id")?,
                kind: row.try_get("kind")?,
                reason: row.try_get("reason")?,
                at: timestamp(row, "at")?,
            })
        })
        .await?,
    };
    tx.commit().await?;
    Ok(recovered)
}

/// The rows of a statement without parameters, each mapped by `map`.
async fn rows<T>(
    tx: &Transaction<'_>,
    sql: &str,
    map: impl Fn(&Row) -> Result<T, PgError>,
) -> Result<Vec<T>, PgError> {
    tx.query(sql, &[]).await?.iter().map(map).collect()
}
