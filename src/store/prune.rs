//! Retention (`state.retention`): deletes what is older than it, one small batch per
//! command, so the writer is never held long and alarms queued meanwhile go in between.
//!
//! Never deleted: an undecided alarm, an open change, a pending notification, and what a
//! rule still counts — each instance's last upward and last downward change, the upward
//! changes a step down would take back (since its baseline), the changes started inside
//! the longest `max_changes` window, each instance's latest look, and the latest opening of
//! each schedule that made a change, and each instance's latest `change.blocked` and
//! `ladder.top` (what start-up holds their repeats back by). An alarm or a change something
//! kept still refers to
//! stays with it. The `instances` rows (names, baselines: the floor) are never deleted.

use jiff::Timestamp;
use rusqlite::{Connection, named_params};

use super::commands::Failure;
use super::rows::timestamp_text;

/// One batch of retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prune {
    /// Rows older than this go.
    pub before: Timestamp,
    /// Changes started at or after this are kept (the longest `max_changes` window).
    pub keep_changes_since: Timestamp,
    /// The most rows this batch deletes.
    pub batch: u32,
}

/// What a run of retention deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub rows: u64,
    pub batches: u64,
}

/// The statements, in the order that keeps every reference valid: what refers to a row is
/// deleted before it. Each takes the cut-off (`:before`), how many rows it may still delete
/// (`:left`) and, for changes, the `max_changes` window (`:window`). Alarms and looks are
/// many and have no index by time (one would cost every alarm an insert): their ids grow
/// with time, so the scan stops at the first one young enough.
const STEPS: &[(&str, bool)] = &[
    // Deliveries of events older than the cut-off with nothing pending, then the events.
    (
        "DELETE FROM deliveries WHERE notification_id IN ( \
           SELECT n.id FROM notifications AS n WHERE n.at < :before AND NOT EXISTS ( \
             SELECT 1 FROM deliveries AS d WHERE d.notification_id = n.id AND d.state = 'pending') \
           ORDER BY n.id LIMIT :left)",
        false,
    ),
    (
        "DELETE FROM notifications WHERE id IN ( \
           SELECT n.id FROM notifications AS n WHERE n.at < :before AND NOT EXISTS ( \
             SELECT 1 FROM deliveries AS d WHERE d.notification_id = n.id) \
              AND NOT (n.instance_id IS NOT NULL \
                AND (n.kind = 'change.blocked' OR n.kind = 'ladder.top') \
                AND n.id = (SELECT max(id) FROM notifications \
                  WHERE instance_id = n.instance_id AND kind = n.kind)) \
           ORDER BY n.id LIMIT :left)",
        false,
    ),
    // Looks, but each instance's latest.
    (
        "DELETE FROM looks WHERE id IN ( \
           SELECT l.id FROM looks AS l \
            WHERE l.id < coalesce((SELECT id FROM looks WHERE at >= :before ORDER BY id LIMIT 1), \
                                  9223372036854775807) \
              AND l.at < :before \
              AND l.id <> (SELECT max(id) FROM looks WHERE instance_id = l.instance_id) \
           ORDER BY l.id LIMIT :left)",
        false,
    ),
    // Schedule runs, but the latest opening of each schedule that made a change.
    (
        "DELETE FROM schedule_runs WHERE id IN ( \
           SELECT s.id FROM schedule_runs AS s WHERE s.at < :before AND NOT ( \
             s.decision <> 'skip' AND s.opened_at = (SELECT max(opened_at) FROM schedule_runs \
               WHERE instance_id = s.instance_id AND schedule = s.schedule AND decision <> 'skip')) \
           ORDER BY s.id LIMIT :left)",
        false,
    ),
    // Finished changes, but what the rules still count and what a kept row refers to.
    (
        "DELETE FROM changes WHERE id IN ( \
           SELECT c.id FROM changes AS c WHERE c.finished_at < :before AND c.intended_at < :window \
              AND c.finished_at < (SELECT max(finished_at) FROM changes \
                    WHERE instance_id = c.instance_id AND direction = c.direction \
                      AND kind = c.kind AND finished_at IS NOT NULL) \
              AND NOT (c.kind = 'plan' AND c.direction = 'up' AND c.phase = 'completed' AND c.dry_run = 0 \
                    AND c.finished_at > coalesce( \
                      (SELECT baseline_since FROM instances WHERE id = c.instance_id), '')) \
              AND NOT EXISTS (SELECT 1 FROM looks WHERE change_id = c.id) \
              AND NOT EXISTS (SELECT 1 FROM schedule_runs WHERE change_id = c.id) \
           ORDER BY c.id LIMIT :left)",
        true,
    ),
    // Decided alarms no kept change refers to.
    (
        "DELETE FROM alarms WHERE id IN ( \
           SELECT a.id FROM alarms AS a \
            WHERE a.id < coalesce((SELECT id FROM alarms WHERE received_at >= :before \
                                   ORDER BY id LIMIT 1), 9223372036854775807) \
              AND a.received_at < :before AND a.decided_at IS NOT NULL \
              AND NOT EXISTS (SELECT 1 FROM changes WHERE alarm_id = a.id) \
           ORDER BY a.id LIMIT :left)",
        false,
    ),
    // Pauses that ended (early or by themselves) before the cut-off.
    (
        "DELETE FROM pauses WHERE id IN ( \
           SELECT id FROM pauses WHERE coalesce(ended_at, until) < :before LIMIT :left)",
        false,
    ),
];

/// Runs one batch in the caller's transaction; answers how many rows it deleted.
pub(crate) fn batch(conn: &Connection, prune: &Prune) -> Result<i64, Failure> {
    let before = timestamp_text(prune.before);
    let window = timestamp_text(prune.keep_changes_since);
    let mut left = i64::from(prune.batch);
    let mut deleted_in_all = 0i64;
    for (sql, uses_window) in STEPS {
        if left <= 0 {
            break;
        }
        let mut statement = conn.prepare_cached(sql)?;
        let deleted = if *uses_window {
            statement
                .execute(named_params! {":before": before, ":left": left, ":window": window})?
        } else {
            statement.execute(named_params! {":before": before, ":left": left})?
        };
        let deleted = i64::try_from(deleted).unwrap_or(i64::MAX);
        deleted_in_all = deleted_in_all.saturating_add(deleted);
        left -= deleted;
    }
    // What was deleted (a step on deliveries may go past `left`: every sink of an event).
    Ok(deleted_in_all)
}

impl super::Store {
    /// Deletes what retention lets go, a batch of at most `prune.batch` rows per
    /// transaction, until a batch finds less than that; the writer serves whatever queued
    /// in between (alarms wait behind one batch at most).
    pub async fn prune(&self, prune: Prune) -> Result<Pruned, super::StoreError> {
        let mut pruned = Pruned::default();
        loop {
            let deleted = self
                .submit(super::commands::Command::Prune(prune))
                .await?
                .unwrap_or(0)
                .unsigned_abs();
            pruned.rows += deleted;
            pruned.batches += 1;
            if deleted < u64::from(prune.batch) {
                return Ok(pruned);
            }
            // Lets a waiting alarm's write go first.
            tokio::task::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{
        ChangeFinish, DecisionKind, Direction, NewAlarm, NewChange, NewDecision, Phase, Store,
    };

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn alarm(received_at: &str) -> NewAlarm {
        NewAlarm {
            received_at: at(received_at),
            remote_addr: None,
            body: "{}".into(),
            kind: "memory".into(),
            value: Some(85.0),
            instance: Some("7".into()),
            resolved: false,
            message: None,
            triggered_at: None,
        }
    }

    fn decision(when: &str, kind: DecisionKind) -> NewDecision {
        NewDecision {
            at: at(when),
            instance_id: Some(7),
            plan: Some("bunny-1".into()),
            kind,
            reason: None,
            rule: None,
            from_plan: None,
            to_plan: None,
            detail: "d".into(),
        }
    }

    /// An alarm at `when` that made a change up, finished a minute later.
    async fn change_up(store: &Store, when: &str, phase: Phase) -> i64 {
        let alarm_id = store.record_alarm(alarm(when)).await.unwrap();
        let change = NewChange {
            instance_id: 7,
            alarm_id: Some(alarm_id),
            direction: Direction::Up,
            kind: crate::decide::ChangeKind::Plan,
            from_plan: "bunny-1".into(),
            to_plan: "hare-1".into(),
            rule: "memory-high".into(),
            cooldown: std::time::Duration::from_secs(60),
            dry_run: false,
            intended_at: at(when),
            world: None,
        };
        let id = store
            .record_decision(alarm_id, decision(when, DecisionKind::Change), Some(change))
            .await
            .unwrap()
            .unwrap();
        let finish = ChangeFinish {
            phase,
            finished_at: crate::clock::add(at(when), std::time::Duration::from_secs(60)),
            detail: None,
            needs_attention: false,
        };
        store.finish_change(id, finish).await.unwrap();
        id
    }

    fn count<T: rusqlite::types::FromSql>(dir: &std::path::Path, sql: &str) -> T {
        let conn = Connection::open(dir.join(crate::store::DB_FILE_NAME)).unwrap();
        conn.query_row(sql, [], |row| row.get(0)).unwrap()
    }

    #[tokio::test]
    async fn old_rows_go_in_batches_and_what_the_rules_count_stays() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        // 30 old decided alarms (skips), one old undecided alarm, one recent alarm.
        for minute in 0..30 {
            let when = format!("2026-01-01T10:{minute:02}:00Z");
            let id = store.record_alarm(alarm(&when)).await.unwrap();
            store
                .record_decision(id, decision(&when, DecisionKind::Skip), None)
                .await
                .unwrap();
        }
        store
            .record_alarm(alarm("2026-01-01T11:00:00Z"))
            .await
            .unwrap();
        // Three old changes up (the last of them is the last up: it stays, with its
        // alarm), and a recent alarm.
        change_up(&store, "2026-01-02T10:00:00Z", Phase::Failed).await;
        change_up(&store, "2026-01-03T10:00:00Z", Phase::Failed).await;
        let last_up = change_up(&store, "2026-01-04T10:00:00Z", Phase::Failed).await;
        store
            .record_alarm(alarm("2026-12-01T10:00:00Z"))
            .await
            .unwrap();
        let prune = Prune {
            before: at("2026-06-01T00:00:00Z"),
            keep_changes_since: at("2026-06-01T00:00:00Z"),
            batch: 8,
        };
        let pruned = store.prune(prune).await.unwrap();
        // 30 skips, 2 changes and their 2 alarms.
        assert_eq!(pruned.rows, 34, "{pruned:?}");
        assert_eq!(pruned.batches, 5, "batches of at most 8");
        store.close().await;
        let dir = dir.path();
        assert_eq!(
            count::<i64>(dir, "SELECT count(*) FROM alarms WHERE decided_at IS NULL"),
            2
        );
        assert_eq!(
            count::<String>(dir, "SELECT count(*) || ':' || max(id) FROM changes"),
            format!("1:{last_up}"),
            "only the last change up stays"
        );
        assert_eq!(count::<i64>(dir, "SELECT count(*) FROM alarms"), 3);
        // Nothing more to do: a second run deletes nothing.
        let (store, _) = Store::open(dir).unwrap();
        assert_eq!(store.prune(prune).await.unwrap().rows, 0);
        store.close().await;
    }

    #[tokio::test]
    async fn changes_inside_the_max_changes_window_and_open_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        change_up(&store, "2026-01-02T10:00:00Z", Phase::Completed).await;
        change_up(&store, "2026-01-03T10:00:00Z", Phase::Failed).await;
        change_up(&store, "2026-01-04T10:00:00Z", Phase::Failed).await;
        // An open change, long ago.
        let alarm_id = store
            .record_alarm(alarm("2026-01-05T10:00:00Z"))
            .await
            .unwrap();
        let open = NewChange {
            instance_id: 7,
            alarm_id: Some(alarm_id),
            direction: Direction::Up,
            kind: crate::decide::ChangeKind::Plan,
            from_plan: "hare-1".into(),
            to_plan: "rabbit-1".into(),
            rule: "memory-high".into(),
            cooldown: std::time::Duration::from_secs(60),
            dry_run: false,
            intended_at: at("2026-01-05T10:00:00Z"),
            world: None,
        };
        store
            .record_decision(
                alarm_id,
                decision("2026-01-05T10:00:00Z", DecisionKind::Change),
                Some(open),
            )
            .await
            .unwrap();
        // The window reaches back before every change: all stay. (The completed change
        // up would stay anyway: with no baseline, a step down would take it back.)
        let pruned = store
            .prune(Prune {
                before: at("2026-06-01T00:00:00Z"),
                keep_changes_since: at("2026-01-01T00:00:00Z"),
                batch: 100,
            })
            .await
            .unwrap();
        assert_eq!(pruned.rows, 0);
        let pruned = store
            .prune(Prune {
                before: at("2026-06-01T00:00:00Z"),
                keep_changes_since: at("2026-06-01T00:00:00Z"),
                batch: 100,
            })
            .await
            .unwrap();
        // The failed change of 01-03 and its alarm; 01-04 is the last up to finish.
        assert_eq!(pruned.rows, 2);
        store.close().await;
        assert_eq!(
            count::<i64>(
                dir.path(),
                "SELECT count(*) FROM changes WHERE phase IN ('intended', 'submitted')"
            ),
            1
        );
        assert_eq!(count::<i64>(dir.path(), "SELECT count(*) FROM changes"), 3);
    }

    #[tokio::test]
    async fn delivered_notifications_go_but_each_instances_latest_notice_stays() {
        use crate::store::{DeliveryAttempt, DeliveryOutcome, NewNotification};
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        let note = |id: &str, kind: &str, when: &str| NewNotification {
            event_id: id.into(),
            kind: kind.into(),
            instance_id: Some(7),
            reason: Some("frozen".into()),
            at: at(when),
            body: "{}".into(),
            sinks: vec!["webhook".into()],
        };
        store
            .record_notifications(vec![
                note("a", "change.blocked", "2026-01-01T10:00:00Z"),
                note("b", "change.started", "2026-01-01T10:01:00Z"),
                note("c", "change.blocked", "2026-01-01T10:02:00Z"),
                note("d", "change.completed", "2026-01-01T10:03:00Z"),
            ])
            .await
            .unwrap();
        for id in ["a", "b", "c"] {
            let attempt = DeliveryAttempt {
                event_id: id.into(),
                sink: "webhook".into(),
                at: at("2026-01-01T11:00:00Z"),
                outcome: DeliveryOutcome::Sent,
            };
            store.record_delivery(attempt).await.unwrap();
        }
        let prune = Prune {
            before: at("2026-06-01T00:00:00Z"),
            keep_changes_since: at("2026-06-01T00:00:00Z"),
            batch: 100,
        };
        store.prune(prune).await.unwrap();
        store.close().await;
        // a: an older notice; b: delivered. c is the latest blocked (start-up holds its
        // repeat back by it), d is still pending.
        assert_eq!(
            count::<String>(
                dir.path(),
                "SELECT group_concat(event_id, ',') FROM (SELECT event_id FROM notifications ORDER BY id)"
            ),
            "c,d"
        );
        assert_eq!(
            count::<i64>(
                dir.path(),
                "SELECT count(*) FROM deliveries WHERE state = 'pending'"
            ),
            1
        );
    }
}
