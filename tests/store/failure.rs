//! A disk that is full or read-only: the write is refused (the webhook's 503), nothing
//! half-written stays, the store says it is unhealthy, and it recovers with no restart.
//!
//! Tests may run as root, where `chmod` stops no write, so the failures are made by the
//! database itself through `Store::inject_fault`: `PRAGMA max_page_count` (SQLITE_FULL)
//! and `PRAGMA query_only` (SQLITE_READONLY). Those tests are SQLite's only: the
//! PostgreSQL writer simulates no storage fault (a full disk is the server's to report);
//! its counterparts are named at each. What both backends share, one refused command in a
//! batch failing alone, runs on both.

use std::time::{Duration, Instant};

use cloudamqp_autoscaler::store::{Fault, Phase, StoreError};

use super::support::{
    Backend, INSTANCE, alarm, at, change, change_decision, finish, intend_change, skip,
};

both!(in_one_batch_only_a_refused_command_fails);

/// Queued together behind a lock the writer waits for: a decision on an unknown alarm is
/// refused, and the commands around it in its batch are written (on PostgreSQL the batch's
/// transaction is rolled back and each command run again alone).
async fn in_one_batch_only_a_refused_command_fails(backend: Backend) {
    let (store, _) = backend.open().await;
    let first = store.record_alarm(alarm("{}")).await.unwrap();
    let blocker = backend.block_alarm_writes().await;

    let before = store.record_alarm(alarm("{}"));
    let refused = store.record_decision(999, skip(Some(INSTANCE), "2026-11-26T17:00:01Z"), None);
    let decided = store.record_decision(first, skip(Some(INSTANCE), "2026-11-26T17:00:01Z"), None);
    let after = store.record_alarm(alarm("{}"));
    blocker.release().await;

    assert!(before.await.is_ok());
    let err = refused.await.unwrap_err();
    assert!(matches!(err, StoreError::Write(_)), "{err:?}");
    assert!(err.to_string().contains("no alarm 999"), "{err}");
    assert_eq!(decided.await.unwrap(), None);
    assert!(after.await.is_ok());
    assert!(store.healthy(), "a refused write is not a broken disk");
    // The four in at most two batches after the first alarm's (each batch takes the next
    // ones in the queue): the refused one shared its batch with one written at least.
    let stats = store.stats();
    assert_eq!((stats.commands, stats.failed), (5, 1), "{stats:?}");
    assert!(stats.batches <= 3, "{stats:?}");
    assert_eq!(backend.count("alarms").await, 3);
    assert_eq!(backend.count("decisions").await, 1);
    store.close().await;
}

/// Bigger than a page, so it needs new pages whatever free space the last page had.
fn big_body() -> String {
    format!("{{\"message\":\"{}\"}}", "x".repeat(64 * 1024))
}

/// SQLite only (PostgreSQL's database cut off, 503, then taking writes again:
/// `replicas::the_database_cut_off_answers_503_and_recovers_by_itself`).
#[tokio::test]
async fn a_full_disk_refuses_the_alarm_then_recovers() {
    let backend = Backend::sqlite();
    let (store, _) = backend.open().await;
    store.record_alarm(alarm("{}")).await.unwrap();
    store.inject_fault(Some(Fault::DiskFull)).await.unwrap();

    let err = store.record_alarm(alarm(&big_body())).await.unwrap_err();
    assert!(matches!(err, StoreError::Write(_)), "{err:?}");
    assert!(err.to_string().contains("full"), "{err}");
    assert!(!store.healthy());
    assert_eq!(backend.count("alarms").await, 1, "no partial row");

    store.inject_fault(None).await.unwrap();
    let id = store.record_alarm(alarm(&big_body())).await.unwrap();
    assert!(store.healthy());
    assert_eq!(backend.count("alarms").await, 2);

    let (store, recovered) = backend.restart(store).await;
    let pending: Vec<_> = recovered.pending_alarms.iter().map(|a| a.id).collect();
    assert_eq!(pending.len(), 2);
    assert_eq!(pending[1], id);
    store.close().await;
}

/// SQLite only (PostgreSQL's `/readyz` back to 200 with no restart:
/// `replicas::the_database_cut_off_answers_503_and_recovers_by_itself`).
#[tokio::test]
async fn health_returns_without_traffic_once_the_disk_takes_writes() {
    let backend = Backend::sqlite();
    let (store, _) = backend.open().await;
    store.inject_fault(Some(Fault::DiskFull)).await.unwrap();
    assert!(store.record_alarm(alarm(&big_body())).await.is_err());
    assert!(!store.healthy());

    // Still full: the writer's probes fail and the store stays unhealthy.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!store.healthy());

    // Space returns; no alarm arrives (an unready daemon gets no traffic), yet it heals.
    store.inject_fault(None).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !store.healthy() {
        assert!(Instant::now() < deadline, "still unhealthy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(backend.count("alarms").await, 0);
    assert_eq!(backend.count("write_probe").await, 0);
    store.close().await;
}

/// SQLite only (on both backends with a refusal for the failure:
/// `in_one_batch_only_a_refused_command_fails` above).
#[tokio::test]
async fn in_one_batch_only_the_commands_that_cannot_be_written_fail() {
    let backend = Backend::sqlite();
    let (store, _) = backend.open().await;
    let id = intend_change(&store, INSTANCE, "2026-11-26T17:00:00Z").await;
    store.inject_fault(Some(Fault::DiskFull)).await.unwrap();

    // Queued together: an update in place fits, a 64 KiB alarm does not.
    let submitted = store.mark_submitted(id, at("2026-11-26T17:00:01Z"));
    let refused = store.record_alarm(alarm(&big_body()));
    let small = store.finish_change(id, finish(Phase::Completed, "2026-11-26T17:01:00Z"));
    assert!(submitted.await.is_ok());
    assert!(matches!(refused.await, Err(StoreError::Write(_))));
    assert!(small.await.is_ok());
    assert_eq!(backend.count("alarms").await, 1);
    store.close().await;
}

/// SQLite only (PostgreSQL's refused batch leaving nothing:
/// `store::pg::accept_tests::a_batch_with_a_row_the_database_refuses_commits_nothing_of_it`,
/// and a refused decision writing no change:
/// `store::pg::commands_tests::a_decision_on_a_decided_or_unknown_alarm_is_refused_and_writes_nothing`).
#[tokio::test]
async fn a_read_only_database_refuses_everything_and_leaves_no_partial_decision() {
    let backend = Backend::sqlite();
    let (store, _) = backend.open().await;
    let alarm_id = store.record_alarm(alarm("{}")).await.unwrap();
    store.inject_fault(Some(Fault::ReadOnly)).await.unwrap();

    let err = store
        .record_decision(
            alarm_id,
            change_decision(INSTANCE, "2026-11-26T17:00:00Z"),
            Some(change(&store, alarm_id, INSTANCE, "2026-11-26T17:00:00Z").await),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("readonly"), "{err}");
    assert!(store.record_alarm(alarm("{}")).await.is_err());
    assert!(!store.healthy());
    assert_eq!(backend.count("decisions").await, 0);
    assert_eq!(backend.count("changes").await, 0);
    assert_eq!(backend.count("alarms").await, 1);
    assert_eq!(store.stats().failed, 2);

    store.inject_fault(None).await.unwrap();
    let change_id = store
        .record_decision(
            alarm_id,
            change_decision(INSTANCE, "2026-11-26T17:00:00Z"),
            Some(change(&store, alarm_id, INSTANCE, "2026-11-26T17:00:00Z").await),
        )
        .await
        .unwrap();
    assert!(change_id.is_some());
    assert!(store.healthy());
    assert_eq!(backend.count("decisions").await, 1);
    store.close().await;
}
