//! The outbox's and retention's commands on PostgreSQL ([`super::commands::execute`]): the
//! SQLite store's `outbox::insert`, `outbox::record_attempt` and `prune::batch`, statement
//! for statement.

use deadpool_postgres::Transaction;

use super::commands::PgFailure;
use super::rows::{db_instance_id, db_time};
use crate::store::Prune;
use crate::store::{DeliveryAttempt, DeliveryOutcome, NewNotification};

/// Inserts the events and their deliveries (one per sink, pending), in the caller's
/// transaction. `body` is checked JSON here (`json`): a body that is not JSON is refused.
///
/// Each delivery is `owner`'s (this replica's) to send: another replica takes it over only
/// once `owner` is no longer alive (see `claim_deliveries`).
pub(super) async fn insert(
    tx: &Transaction<'_>,
    notes: &[NewNotification],
    owner: &str,
) -> Result<(), PgFailure> {
    for note in notes {
        if note.sinks.is_empty() {
            return Err(PgFailure::Refused(format!(
                "event {} goes to no sink",
                note.event_id
            )));
        }
        let instance_id = note.instance_id.map(db_instance_id).transpose()?;
        let statement = tx
            .prepare_cached(
                "INSERT INTO notifications (event_id, kind, instance_id, reason, at, body) \
                 VALUES ($1, $2, $3, $4, $5, $6::text::json) RETURNING id",
            )
            .await?;
        let row = tx
            .query_one(
                &statement,
                &[
                    &note.event_id,
                    &note.kind,
                    &instance_id,
                    &note.reason,
                    &db_time(note.at)?,
                    &note.body,
                ],
            )
            .await?;
        let id: i64 = row.try_get("id")?;
        let statement = tx
            .prepare_cached(
                "INSERT INTO deliveries (notification_id, sink, state, owner) \
                 VALUES ($1, $2, 'pending', $3)",
            )
            .await?;
        for sink in &note.sinks {
            tx.execute(&statement, &[&id, sink, &owner]).await?;
        }
    }
    Ok(())
}

/// Records an attempt on a pending delivery; one already sent or dropped is left alone,
/// an unknown one refused.
pub(super) async fn record_attempt(
    tx: &Transaction<'_>,
    attempt: &DeliveryAttempt,
) -> Result<(), PgFailure> {
    let (state, error) = match &attempt.outcome {
        DeliveryOutcome::Sent => ("sent", None),
        DeliveryOutcome::Failed(why) => ("pending", Some(why.as_str())),
        DeliveryOutcome::Dropped(why) => ("dropped", Some(why.as_str())),
    };
    let at = db_time(attempt.at)?;
    let finished = (state != "pending").then_some(at);
    let statement = tx
        .prepare_cached(
            "UPDATE deliveries SET state = $1, attempts = attempts + 1, last_error = $2, \
                 finished_at = $3, last_attempt_at = $4 \
             WHERE state = 'pending' AND sink = $5 AND notification_id = \
                 (SELECT id FROM notifications WHERE event_id = $6)",
        )
        .await?;
    let updated = tx
        .execute(
            &statement,
            &[
                &state,
                &error,
                &finished,
                &at,
                &attempt.sink,
                &attempt.event_id,
            ],
        )
        .await?;
    if updated == 0 {
        let statement = tx
            .prepare_cached(
                "SELECT 1 FROM deliveries AS d JOIN notifications AS n \
                 ON n.id = d.notification_id WHERE n.event_id = $1 AND d.sink = $2",
            )
            .await?;
        let known = tx
            .query_opt(&statement, &[&attempt.event_id, &attempt.sink])
            .await?
            .is_some();
        if !known {
            return Err(PgFailure::Refused(format!(
                "no delivery of event {} to {}",
                attempt.event_id, attempt.sink
            )));
        }
    }
    Ok(())
}

/// `prune::STEPS` in PostgreSQL's words: `$1` the cut-off, `$2` how many rows the step
/// may still delete and, for changes, `$3` the `max_changes` window. Open changes stay:
/// they have no `finished_at` (and are named once more, to say so).
const STEPS: &[(&str, bool)] = &[
    // Deliveries of events older than the cut-off with nothing pending, then the events.
    (
        "DELETE FROM deliveries WHERE notification_id IN ( \
           SELECT n.id FROM notifications AS n WHERE n.at < $1 AND NOT EXISTS ( \
             SELECT 1 FROM deliveries AS d WHERE d.notification_id = n.id AND d.state = 'pending') \
           ORDER BY n.id LIMIT $2)",
        false,
    ),
    (
        "DELETE FROM notifications WHERE id IN ( \
           SELECT n.id FROM notifications AS n WHERE n.at < $1 AND NOT EXISTS ( \
             SELECT 1 FROM deliveries AS d WHERE d.notification_id = n.id) \
              AND NOT (n.instance_id IS NOT NULL \
                AND (n.kind = 'change.blocked' OR n.kind = 'ladder.top') \
                AND n.id = (SELECT max(id) FROM notifications \
                  WHERE instance_id = n.instance_id AND kind = n.kind)) \
           ORDER BY n.id LIMIT $2)",
        false,
    ),
    // Looks, but each instance's latest.
    (
        "DELETE FROM looks WHERE id IN ( \
           SELECT l.id FROM looks AS l \
            WHERE l.id < coalesce((SELECT id FROM looks WHERE at >= $1 ORDER BY id LIMIT 1), \
                                  9223372036854775807) \
              AND l.at < $1 \
              AND l.id <> (SELECT max(id) FROM looks WHERE instance_id = l.instance_id) \
           ORDER BY l.id LIMIT $2)",
        false,
    ),
    // Schedule runs, but the latest opening of each schedule that made a change.
    (
        "DELETE FROM schedule_runs WHERE id IN ( \
           SELECT s.id FROM schedule_runs AS s WHERE s.at < $1 AND NOT ( \
             s.decision <> 'skip' AND s.opened_at = (SELECT max(opened_at) FROM schedule_runs \
               WHERE instance_id = s.instance_id AND schedule = s.schedule AND decision <> 'skip')) \
           ORDER BY s.id LIMIT $2)",
        false,
    ),
    // Finished changes, but what the rules still count and what a kept row refers to.
    (
        "DELETE FROM changes WHERE id IN ( \
           SELECT c.id FROM changes AS c WHERE c.finished_at < $1 AND c.intended_at < $3 \
              AND c.phase NOT IN ('intended', 'submitted') \
              AND c.finished_at < (SELECT max(finished_at) FROM changes \
                    WHERE instance_id = c.instance_id AND direction = c.direction \
                      AND kind = c.kind AND finished_at IS NOT NULL) \
              AND NOT (c.kind = 'plan' AND c.direction = 'up' AND c.phase = 'completed' \
                    AND NOT c.dry_run \
                    AND c.finished_at > coalesce( \
                      (SELECT baseline_since FROM instances WHERE id = c.instance_id), \
                      '-infinity'::timestamptz)) \
              AND NOT EXISTS (SELECT 1 FROM looks WHERE change_id = c.id) \
              AND NOT EXISTS (SELECT 1 FROM schedule_runs WHERE change_id = c.id) \
           ORDER BY c.id LIMIT $2)",
        true,
    ),
    // Decided alarms no kept change refers to.
    (
        "DELETE FROM alarms WHERE id IN ( \
           SELECT a.id FROM alarms AS a \
            WHERE a.id < coalesce((SELECT id FROM alarms WHERE received_at >= $1 \
                                   ORDER BY id LIMIT 1), 9223372036854775807) \
              AND a.received_at < $1 AND a.decided_at IS NOT NULL \
              AND NOT EXISTS (SELECT 1 FROM changes WHERE alarm_id = a.id) \
           ORDER BY a.id LIMIT $2)",
        false,
    ),
    // Pauses that ended (early or by themselves) before the cut-off.
    (
        "DELETE FROM pauses WHERE id IN ( \
           SELECT id FROM pauses WHERE coalesce(ended_at, until) < $1 ORDER BY id LIMIT $2)",
        false,
    ),
];

/// Runs one batch of retention in the caller's transaction; answers how many rows it
/// deleted.
pub(super) async fn prune_batch(tx: &Transaction<'_>, prune: &Prune) -> Result<i64, PgFailure> {
    let before = db_time(prune.before)?;
    let window = db_time(prune.keep_changes_since)?;
    let mut left = i64::from(prune.batch);
    let mut deleted_in_all = 0i64;
    for (sql, uses_window) in STEPS {
        if left <= 0 {
            break;
        }
        let statement = tx.prepare_cached(sql).await?;
        let deleted = if *uses_window {
            tx.execute(&statement, &[&before, &left, &window]).await?
        } else {
            tx.execute(&statement, &[&before, &left]).await?
        };
        let deleted = i64::try_from(deleted).unwrap_or(i64::MAX);
        deleted_in_all = deleted_in_all.saturating_add(deleted);
        left -= deleted;
    }
    // What was deleted (a step on deliveries may go past `left`: every sink of an event).
    Ok(deleted_in_all)
}
