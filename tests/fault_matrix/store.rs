//! The state store cannot write (disk full, read-only), through `Store::inject_fault`.
//! The webhook answers 503 with `Retry-After` and never 202 for an alarm it could not
//! record; `/readyz` is 503; when the fault lifts, 202 and 200 again with no restart. A
//! change whose end could not be recorded is recorded once the store writes again; a change
//! whose intent could not be recorded is never sent. No second PUT anywhere.

use std::time::{Duration, Instant};

use cloudamqp_autoscaler::fake::{Fault, FaultRule, PathMatch, Timeline};
use cloudamqp_autoscaler::store::Fault as StoreFault;
use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::Value;

use super::common::{WITHIN, app, count, instance_path, reminder_is_cooled_down, requests, until};
use crate::support::{ID, MEMORY_85, TestApp};

/// An alarm bigger than a database page: it cannot fit in the free space of a full disk.
fn big_alarm() -> String {
    format!(
        r#"{{"alarm_type":"memory","value":85,"instance_id":{ID},"message":"{}"}}"#,
        "x".repeat(16 * 1024)
    )
}

/// The alarm id a 202 names.
async fn accepted_id(response: reqwest::Response) -> i64 {
    let body: Value = response.json().await.unwrap();
    body["alarm_id"].as_str().unwrap().parse().unwrap()
}

async fn ready(app: &TestApp) -> StatusCode {
    app.get("/readyz").await.status()
}

async fn webhook_refuses_what_it_cannot_record(fault: StoreFault) {
    let app = app(Timeline::instant(), "30s").await;
    let mut accepted = Vec::new();
    let first = app.alarm(MEMORY_85).await;
    accepted.push(accepted_id(first).await);
    let instance = app.wait_for_result(WITHIN).await;
    assert_eq!(instance["last_change"]["result"], "completed");

    app.handle.store().inject_fault(Some(fault)).await.unwrap();
    let refused = app.alarm(&big_alarm()).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(ready(&app).await, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(app.status().await["store"]["healthy"], false);
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);

    // A burst meanwhile: whatever gets a 202 is on disk (a small alarm may still fit in the
    // free space of a full disk's last page); the rest are 503, never a 202. Half are
    // reminders, decided on arrival (cooldown) and recorded with their decision; half name
    // an instance never seen, which needs the API and a place in the queue.
    let unseen = r#"{"alarm_type":"memory","value":85,"instance_id":424242}"#;
    let burst =
        join_all((0..20).map(|n| app.alarm(if n % 2 == 0 { MEMORY_85 } else { unseen }))).await;
    let mut refused = 0;
    for response in burst {
        match response.status() {
            StatusCode::ACCEPTED => accepted.push(accepted_id(response).await),
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(response.headers().contains_key("retry-after"));
                refused += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    if fault == StoreFault::ReadOnly {
        assert_eq!(refused, 20, "a read-only store records nothing");
    }

    // Space returns: ready again, by itself (the writer probes each second).
    app.handle.store().inject_fault(None).await.unwrap();
    let started = Instant::now();
    while ready(&app).await != StatusCode::OK {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still not ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = app.alarm(MEMORY_85).await;
    assert_eq!(after.status(), StatusCode::ACCEPTED);
    accepted.push(accepted_id(after).await);

    let mut recorded: Vec<i64> = app
        .query("SELECT id FROM alarms ORDER BY id")
        .into_iter()
        .map(|row| row[0].as_i64().unwrap())
        .collect();
    recorded.sort_unstable();
    accepted.sort_unstable();
    assert_eq!(
        recorded, accepted,
        "exactly the alarms that got a 202 are on disk"
    );
    assert_eq!(app.fake.put_attempts(), 1, "one spike, one PUT");
    let metrics = app.metrics().await;
    assert!(metrics.contains(r#"outcome="store_failed""#), "{metrics}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_answers_503_never_202_and_recovers_without_a_restart() {
    webhook_refuses_what_it_cannot_record(StoreFault::DiskFull).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_answers_503_never_202_and_recovers_without_a_restart() {
    webhook_refuses_what_it_cannot_record(StoreFault::ReadOnly).await;
}

/// A change of a few seconds (long enough to be caught `tracking` on a loaded machine).
fn slow_change() -> Timeline {
    Timeline {
        lag: Duration::from_millis(300),
        reconfigure: Duration::from_secs(3),
        stuck: false,
    }
}

fn change_rows(app: &TestApp) -> Vec<Vec<Value>> {
    app.query("SELECT phase, needs_attention FROM changes ORDER BY id")
}

async fn change_ending_while_the_store_cannot_write(fault: StoreFault) {
    let app = app(slow_change(), "30s").await;
    assert_eq!(app.alarm(MEMORY_85).await.status(), StatusCode::ACCEPTED);
    app.wait_for("tracking", WITHIN, |i| i["change"]["phase"] == "tracking")
        .await;
    app.handle.store().inject_fault(Some(fault)).await.unwrap();
    // The change goes on and ends; the daemon knows (the cooldown holds in memory) even
    // if the store could not take it down.
    let instance = app.wait_for_result(WITHIN).await;
    assert_eq!(
        instance["last_change"]["result"], "completed",
        "{instance:#}"
    );
    assert!(instance["cooldown_until"].is_string());
    assert_eq!(
        app.alarm(&big_alarm()).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );

    app.handle.store().inject_fault(None).await.unwrap();
    until("the end of the change on disk", || {
        change_rows(&app) == [[Value::from("completed"), Value::from(0)]]
    })
    .await;
    assert_eq!(app.fake.put_attempts(), 1);
    reminder_is_cooled_down(&app).await;

    // Nothing is left to resume: a restart sends nothing and follows nothing.
    let app = app
        .stop()
        .await
        .restart(super::common::spawn(slow_change(), "30s"))
        .await;
    let instance = app.instance().await;
    assert!(instance["change"].is_null(), "{instance:#}");
    reminder_is_cooled_down(&app).await;
    assert_eq!(app.fake.put_attempts(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_ending_on_a_read_only_store_is_recorded_once_it_writes_again() {
    change_ending_while_the_store_cannot_write(StoreFault::ReadOnly).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_ending_on_a_full_disk_is_recorded_once_it_writes_again() {
    change_ending_while_the_store_cannot_write(StoreFault::DiskFull).await;
}

/// The decision to change is taken while the store cannot write: nothing is sent that is
/// not recorded first. The alarm stays pending; once the store writes again the next
/// reminder acts (one PUT), and a restart decides the pending alarm (cooldown).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intent_that_cannot_be_recorded_is_never_sent() {
    let app = app(Timeline::instant(), "30s").await;
    app.fake.inject(
        FaultRule::once(Fault::Slow(Duration::from_millis(1500)))
            .method("GET")
            .path(PathMatch::Exact(instance_path())),
    );
    let first = app.alarm(MEMORY_85).await;
    let first = accepted_id(first).await;
    until("the read before deciding", || {
        !requests(&app, "GET", &instance_path()).is_empty()
    })
    .await;
    app.handle
        .store()
        .inject_fault(Some(StoreFault::ReadOnly))
        .await
        .unwrap();
    // The read answers, the catalogue is read, then the intent cannot be recorded.
    until("the catalogue read", || {
        !requests(&app, "GET", "/api/plans").is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(app.fake.put_attempts(), 0, "nothing is sent unrecorded");
    assert!(app.instance().await["change"].is_null());

    app.handle.store().inject_fault(None).await.unwrap();
    let pending = format!("SELECT count(*) FROM alarms WHERE id = {first} AND decided_at IS NULL");
    assert_eq!(count(&app, &pending), 1, "still to be decided");
    assert_eq!(app.alarm(MEMORY_85).await.status(), StatusCode::ACCEPTED);
    let instance = app.wait_for_result(WITHIN).await;
    assert_eq!(
        instance["last_change"]["result"], "completed",
        "{instance:#}"
    );
    assert_eq!(app.fake.put_attempts(), 1);

    let app = app
        .stop()
        .await
        .restart(super::common::spawn(Timeline::instant(), "30s"))
        .await;
    let sql = format!("SELECT reason FROM decisions WHERE alarm_id = {first}");
    until("the pending alarm decided after the restart", || {
        !app.query(&sql).is_empty()
    })
    .await;
    assert_eq!(app.query(&sql), [[Value::from("cooldown")]]);
    assert_eq!(app.fake.put_attempts(), 1);
    assert_eq!(
        count(&app, "SELECT count(*) FROM alarms WHERE decided_at IS NULL"),
        0
    );
    assert_eq!(
        app.query("SELECT count(*) = count(DISTINCT alarm_id) FROM decisions"),
        [[Value::from(1)]],
        "one decision per alarm"
    );
    app.stop().await;
}
