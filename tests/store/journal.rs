//! The alarm journal and decisions: on disk before the answer, group-committed, pending
//! until decided.

use std::collections::HashSet;

use cloudamqp_autoscaler::store::{DB_FILE_NAME, Store, StoreError};
use rusqlite::Connection;

use super::support::{INSTANCE, alarm, at, change, change_decision, count, inspect, restart, skip};

#[tokio::test]
async fn an_accepted_alarm_is_pending_after_a_restart_until_decided() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(tmp.path()).unwrap();
    let body = r#"{"alarm_type":"memory","value":85,"instance_id":"359559"}"#;
    let id = store.record_alarm(alarm(body)).await.unwrap();

    let (store, recovered) = restart(store, tmp.path()).await;
    assert_eq!(recovered.pending_alarms.len(), 1);
    let pending = &recovered.pending_alarms[0];
    assert_eq!(pending.id, id);
    assert_eq!(pending.body, body);
    assert_eq!(pending.received_at, at("2026-11-26T17:00:00.25Z"));

    let change = store
        .record_decision(id, skip(Some(INSTANCE), "2026-11-26T17:00:01Z"), None)
        .await
        .unwrap();
    assert_eq!(change, None);

    let (store, recovered) = restart(store, tmp.path()).await;
    assert!(recovered.pending_alarms.is_empty());
    assert_eq!(recovered.last_decisions.len(), 1);
    assert_eq!(recovered.last_decisions[0].alarm_id, id);
    store.close().await;
}

#[tokio::test]
async fn alarm_columns_read_well_in_sqlite3() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(tmp.path()).unwrap();
    store.record_alarm(alarm("{}")).await.unwrap();
    store.close().await;

    let row: (String, String, f64, String, i64, Option<String>) = inspect(tmp.path())
        .query_row(
            "SELECT received_at, kind, value, instance, resolved, decided_at FROM alarms",
            [],
            |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                ))
            },
        )
        .unwrap();
    assert_eq!(
        row,
        (
            "2026-11-26T17:00:00.250000000Z".to_string(),
            "memory".to_string(),
            85.0,
            INSTANCE.to_string(),
            0,
            None
        )
    );
}

#[tokio::test]
async fn concurrent_alarms_share_commits() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(tmp.path()).unwrap();
    // Hold the database's write lock from another connection (as an operator's `sqlite3`
    // in a write transaction would), so all 200 are queued while the writer waits: the
    // batching is then certain rather than a matter of timing.
    let blocker = Connection::open(tmp.path().join(DB_FILE_NAME)).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();

    let (queued_tx, mut queued) = tokio::sync::mpsc::unbounded_channel();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = store.clone();
            let queued_tx = queued_tx.clone();
            tokio::spawn(async move {
                let answer = store.record_alarm(alarm(&format!("{{\"n\":{i}}}")));
                queued_tx.send(()).unwrap();
                answer.await
            })
        })
        .collect();
    for _ in 0..200 {
        queued.recv().await.unwrap();
    }
    blocker.execute_batch("COMMIT").unwrap();

    let mut ids = HashSet::new();
    for task in tasks {
        ids.insert(task.await.unwrap().unwrap());
    }
    assert_eq!(ids.len(), 200, "distinct ids");
    let stats = store.stats();
    assert_eq!(stats.commands, 200);
    assert!(stats.commits < 200, "{stats:?}");
    assert!(stats.largest_batch > 1, "{stats:?}");
    assert_eq!(count(tmp.path(), "alarms"), 200);
    store.close().await;
}

#[tokio::test]
async fn a_dropped_decision_future_still_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(tmp.path()).unwrap();
    let id = store.record_alarm(alarm("{}")).await.unwrap();

    // The client hung up: the handler's future is dropped before it was ever polled.
    drop(store.record_decision(id, skip(Some(INSTANCE), "2026-11-26T17:00:01Z"), None));

    let (store, recovered) = restart(store, tmp.path()).await;
    assert!(recovered.pending_alarms.is_empty());
    assert_eq!(recovered.last_decisions[0].alarm_id, id);
    store.close().await;
}

#[tokio::test]
async fn a_closed_store_refuses_writes_and_is_unhealthy() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(tmp.path()).unwrap();
    let other = store.clone();
    // Queued before close: flushed, not lost.
    let queued = other.record_alarm(alarm("{}"));
    store.close().await;

    assert!(queued.await.is_ok());
    assert!(!other.healthy());
    assert!(matches!(
        other.record_alarm(alarm("{}")).await,
        Err(StoreError::Closed)
    ));
    assert_eq!(count(tmp.path(), "alarms"), 1);
}

#[tokio::test]
async fn dropping_the_last_clone_flushes_and_ends_the_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(tmp.path()).unwrap();
    let queued = store.record_alarm(alarm("{}"));
    drop(store);

    assert!(queued.await.is_ok());
    // The lock is free again: the writer and its connection are gone.
    let (store, recovered) = Store::open(tmp.path()).unwrap();
    assert_eq!(recovered.pending_alarms.len(), 1);
    store.close().await;
}

#[tokio::test]
async fn a_decision_about_an_unknown_alarm_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(tmp.path()).unwrap();

    let err = store
        .record_decision(42, skip(Some(INSTANCE), "2026-11-26T17:00:01Z"), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no alarm 42"), "{err}");
    assert!(store.healthy(), "a refused write is not a broken disk");
    assert_eq!(count(tmp.path(), "decisions"), 0);
    store.close().await;
}

/// One decision per alarm: a second is refused and the first is kept, as is the change it
/// started (a second would be a second plan change for one spike).
#[tokio::test]
async fn an_alarm_is_decided_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(tmp.path()).unwrap();
    let id = store
        .record_alarm(alarm(r#"{"alarm_type":"memory","value":85}"#))
        .await
        .unwrap();
    store
        .record_decision(id, skip(Some(INSTANCE), "2026-11-26T17:00:01Z"), None)
        .await
        .unwrap();

    let err = store
        .record_decision(
            id,
            change_decision(INSTANCE, "2026-11-26T17:00:02Z"),
            Some(change(id, INSTANCE, "2026-11-26T17:00:02Z")),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("alarm {id} is already decided")),
        "{err}"
    );
    assert!(store.healthy(), "a refused write is not a broken disk");
    let db = inspect(tmp.path());
    let kept: (String, String) = db
        .query_row(
            "SELECT decision, at FROM decisions WHERE alarm_id = ?1",
            [id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!(kept.0, "skip");
    assert!(kept.1.starts_with("2026-11-26T17:00:01"), "{}", kept.1);
    assert_eq!(count(tmp.path(), "decisions"), 1);
    assert_eq!(count(tmp.path(), "changes"), 0);
    store.close().await;
}

#[tokio::test]
async fn the_store_and_its_futures_can_move_between_tasks() {
    fn send_sync<T: Send + Sync + 'static>(_: &T) {}
    fn send<T: Send + 'static>(value: T) -> T {
        value
    }
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(tmp.path()).unwrap();
    send_sync(&store);
    let id = tokio::spawn(send(store.record_alarm(alarm("{}"))))
        .await
        .unwrap()
        .unwrap();
    assert!(id > 0);
    tokio::spawn(send(store.close())).await.unwrap();
}
