//! A disk that is full or read-only: the write is refused (the webhook's 503), nothing
//! half-written stays, the store says it is unhealthy, and it recovers with no restart.
//!
//! Tests may run as root, where `chmod` stops no write, so the failures are made by the
//! database itself through `Store::inject_fault`: `PRAGMA max_page_count` (SQLITE_FULL)
//! and `PRAGMA query_only` (SQLITE_READONLY).

use std::time::{Duration, Instant};

use cloudamqp_autoscaler::store::{Fault, Phase, Store, StoreError};

use super::support::{INSTANCE, alarm, at, change, change_decision, count, finish, intend_change};

/// Bigger than a page, so it needs new pages whatever free space the last page had.
fn big_body() -> String {
    format!("{{\"message\":\"{}\"}}", "x".repeat(64 * 1024))
}

#[tokio::test]
async fn a_full_disk_refuses_the_alarm_then_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(tmp.path()).unwrap();
    store.record_alarm(alarm("{}")).await.unwrap();
    store.inject_fault(Some(Fault::DiskFull)).await.unwrap();

    let err = store.record_alarm(alarm(&big_body())).await.unwrap_err();
    assert!(matches!(err, StoreError::Write(_)), "{err:?}");
    assert!(err.to_string().contains("full"), "{err}");
    assert!(!store.healthy());
    assert_eq!(count(tmp.path(), "alarms"), 1, "no partial row");

    store.inject_fault(None).await.unwrap();
    let id = store.record_alarm(alarm(&big_body())).await.unwrap();
    assert!(store.healthy());
    assert_eq!(count(tmp.path(), "alarms"), 2);

    let (store, recovered) = super::support::restart(store, tmp.path()).await;
    let pending: Vec<_> = recovered.pending_alarms.iter().map(|a| a.id).collect();
    assert_eq!(pending.len(), 2);
    assert_eq!(pending[1], id);
    store.close().await;
}

#[tokio::test]
async fn health_returns_without_traffic_once_the_disk_takes_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(tmp.path()).unwrap();
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
    assert_eq!(count(tmp.path(), "alarms"), 0);
    assert_eq!(count(tmp.path(), "write_probe"), 0);
    store.close().await;
}

#[tokio::test]
async fn in_one_batch_only_the_commands_that_cannot_be_written_fail() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(tmp.path()).unwrap();
    let id = intend_change(&store, INSTANCE, "2026-11-26T17:00:00Z").await;
    store.inject_fault(Some(Fault::DiskFull)).await.unwrap();

    // Queued together: an update in place fits, a 64 KiB alarm does not.
    let submitted = store.mark_submitted(id, at("2026-11-26T17:00:01Z"));
    let refused = store.record_alarm(alarm(&big_body()));
    let small = store.finish_change(id, finish(Phase::Completed, "2026-11-26T17:01:00Z"));
    assert!(submitted.await.is_ok());
    assert!(matches!(refused.await, Err(StoreError::Write(_))));
    assert!(small.await.is_ok());
    assert_eq!(count(tmp.path(), "alarms"), 1);
    store.close().await;
}

#[tokio::test]
async fn a_read_only_database_refuses_everything_and_leaves_no_partial_decision() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(tmp.path()).unwrap();
    let alarm_id = store.record_alarm(alarm("{}")).await.unwrap();
    store.inject_fault(Some(Fault::ReadOnly)).await.unwrap();

    let err = store
        .record_decision(
            alarm_id,
            change_decision(INSTANCE, "2026-11-26T17:00:00Z"),
            Some(change(alarm_id, INSTANCE, "2026-11-26T17:00:00Z")),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("readonly"), "{err}");
    assert!(store.record_alarm(alarm("{}")).await.is_err());
    assert!(!store.healthy());
    assert_eq!(count(tmp.path(), "decisions"), 0);
    assert_eq!(count(tmp.path(), "changes"), 0);
    assert_eq!(count(tmp.path(), "alarms"), 1);
    assert_eq!(store.stats().failed, 2);

    store.inject_fault(None).await.unwrap();
    let change_id = store
        .record_decision(
            alarm_id,
            change_decision(INSTANCE, "2026-11-26T17:00:00Z"),
            Some(change(alarm_id, INSTANCE, "2026-11-26T17:00:00Z")),
        )
        .await
        .unwrap();
    assert!(change_id.is_some());
    assert!(store.healthy());
    assert_eq!(count(tmp.path(), "decisions"), 1);
    store.close().await;
}
