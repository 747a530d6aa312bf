//! The alarm journal and decisions: on disk before the answer, group-committed, pending
//! until decided.

use std::collections::HashSet;

use cloudamqp_autoscaler::store::StoreError;

use super::support::{Backend, Cell, INSTANCE, alarm, at, change, change_decision, skip};

both!(
    an_accepted_alarm_is_pending_after_a_restart_until_decided,
    alarm_columns_read_well_in_sqlite3_and_psql,
    concurrent_alarms_share_commits,
    a_dropped_decision_future_still_writes,
    a_closed_store_refuses_writes_and_is_unhealthy,
    dropping_the_last_clone_flushes_and_ends_the_writer,
    a_decision_about_an_unknown_alarm_is_refused,
    an_alarm_is_decided_once,
    the_store_and_its_futures_can_move_between_tasks,
);

async fn an_accepted_alarm_is_pending_after_a_restart_until_decided(backend: Backend) {
    let (store, _) = backend.open().await;
    let body = r#"{"alarm_type":"memory","value":85,"instance_id":"359559"}"#;
    let id = store.record_alarm(alarm(body)).await.unwrap();

    let (store, recovered) = backend.restart(store).await;
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

    let (store, recovered) = backend.restart(store).await;
    assert!(recovered.pending_alarms.is_empty());
    assert_eq!(recovered.last_decisions.len(), 1);
    assert_eq!(recovered.last_decisions[0].alarm_id, id);
    store.close().await;
}

async fn alarm_columns_read_well_in_sqlite3_and_psql(backend: Backend) {
    let (store, _) = backend.open().await;
    store.record_alarm(alarm("{}")).await.unwrap();
    store.close().await;

    let row = backend
        .row("SELECT received_at, kind, value, instance, resolved, decided_at FROM alarms")
        .await;
    let (received_at, resolved) = if backend.is_postgres() {
        (Cell::Time(at("2026-11-26T17:00:00.25Z")), Cell::Bool(false))
    } else {
        // RFC 3339 with nanoseconds, which sorts as text; booleans are 0 and 1.
        (
            Cell::Text("2026-11-26T17:00:00.250000000Z".into()),
            Cell::Int(0),
        )
    };
    assert_eq!(
        row,
        [
            received_at,
            Cell::Text("memory".into()),
            Cell::Real(85.0),
            Cell::Text(INSTANCE.to_string()),
            resolved,
            Cell::Null,
        ]
    );
}

async fn concurrent_alarms_share_commits(backend: Backend) {
    let (store, _) = backend.open().await;
    // Hold a lock the writer needs from another connection, so all 200 are queued while
    // the writer waits: the batching is then certain rather than a matter of timing.
    let blocker = backend.block_alarm_writes().await;

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
    blocker.release().await;

    let mut ids = HashSet::new();
    for task in tasks {
        ids.insert(task.await.unwrap().unwrap());
    }
    assert_eq!(ids.len(), 200, "distinct ids");
    let stats = store.stats();
    assert_eq!(stats.commands, 200);
    assert!(stats.commits < 200, "{stats:?}");
    assert!(stats.largest_batch > 1, "{stats:?}");
    assert_eq!(backend.count("alarms").await, 200);
    store.close().await;
}

async fn a_dropped_decision_future_still_writes(backend: Backend) {
    let (store, _) = backend.open().await;
    let id = store.record_alarm(alarm("{}")).await.unwrap();

    // The client hung up: the handler's future is dropped before it was ever polled.
    drop(store.record_decision(id, skip(Some(INSTANCE), "2026-11-26T17:00:01Z"), None));

    let (store, recovered) = backend.restart(store).await;
    assert!(recovered.pending_alarms.is_empty());
    assert_eq!(recovered.last_decisions[0].alarm_id, id);
    store.close().await;
}

async fn a_closed_store_refuses_writes_and_is_unhealthy(backend: Backend) {
    let (store, _) = backend.open().await;
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
    assert_eq!(backend.count("alarms").await, 1);
}

async fn dropping_the_last_clone_flushes_and_ends_the_writer(backend: Backend) {
    let (store, _) = backend.open().await;
    let queued = store.record_alarm(alarm("{}"));
    drop(store);

    assert!(queued.await.is_ok());
    // On SQLite the directory's lock is free again: the writer and its connection are
    // gone.
    let (store, recovered) = backend.open().await;
    assert_eq!(recovered.pending_alarms.len(), 1);
    store.close().await;
}

async fn a_decision_about_an_unknown_alarm_is_refused(backend: Backend) {
    let (store, _) = backend.open().await;

    let err = store
        .record_decision(42, skip(Some(INSTANCE), "2026-11-26T17:00:01Z"), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no alarm 42"), "{err}");
    assert!(store.healthy(), "a refused write is not a broken disk");
    assert_eq!(backend.count("decisions").await, 0);
    store.close().await;
}

/// One decision per alarm: a second is refused and the first is kept, as is the change it
/// started (a second would be a second plan change for one spike).
async fn an_alarm_is_decided_once(backend: Backend) {
    let (store, _) = backend.open().await;
    let id = store
        .record_alarm(alarm(r#"{"alarm_type":"memory","value":85}"#))
        .await
        .unwrap();
    store
        .record_decision(id, skip(Some(INSTANCE), "2026-11-26T17:00:01Z"), None)
        .await
        .unwrap();

    let second = change(&store, id, INSTANCE, "2026-11-26T17:00:02Z").await;
    let err = store
        .record_decision(
            id,
            change_decision(INSTANCE, "2026-11-26T17:00:02Z"),
            Some(second),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("alarm {id} is already decided")),
        "{err}"
    );
    assert!(store.healthy(), "a refused write is not a broken disk");
    let kept = backend
        .row(&format!(
            "SELECT decision, at FROM decisions WHERE alarm_id = {id}"
        ))
        .await;
    assert_eq!(kept[0].text(), "skip");
    assert_eq!(kept[1].time(), at("2026-11-26T17:00:01Z"));
    assert_eq!(backend.count("decisions").await, 1);
    assert_eq!(backend.count("changes").await, 0);
    store.close().await;
}

async fn the_store_and_its_futures_can_move_between_tasks(backend: Backend) {
    fn send_sync<T: Send + Sync + 'static>(_: &T) {}
    fn send<T: Send + 'static>(value: T) -> T {
        value
    }
    let (store, _) = backend.open().await;
    send_sync(&store);
    let id = tokio::spawn(send(store.record_alarm(alarm("{}"))))
        .await
        .unwrap()
        .unwrap();
    assert!(id > 0);
    tokio::spawn(send(store.close())).await.unwrap();
}
