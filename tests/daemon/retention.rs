//! `state.retention`, black-box with an injected clock: old rows go, what the rules still
//! count stays, and `/status` lists only the instances seen within retention.

use std::sync::Arc;
use std::time::Duration;

use cloudamqp_autoscaler::clock::OffsetClock;
use reqwest::StatusCode;

use crate::guardrails::{self, at, changes_to};
use crate::support::{ID, Spawn};

const CPU: &str = r#"{"alarm_type":"cpu","value":50,"instance_id":359559}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_rows_go_and_the_last_change_stays() {
    let clock = OffsetClock::starting_at(at("2026-12-04T12:00:00Z"));
    let app = crate::support::spawn_app(Spawn {
        clock: Some(clock.clone() as Arc<_>),
        env: vec![("AUTOSCALER__STATE__RETENTION".into(), "1h".into())],
        ..guardrails::spawn("")
    })
    .await;
    changes_to(&app, "hare-1").await;
    for _ in 0..5 {
        assert_eq!(app.alarm(CPU).await.status(), StatusCode::ACCEPTED);
    }
    let count = |sql: &str| app.query(sql)[0][0].as_i64().unwrap();
    let started = std::time::Instant::now();
    while count("SELECT count(*) FROM decisions") < 6 {
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!app.instance().await.is_null());

    // Two hours on: retention wakes with the clock.
    clock.set(at("2026-12-04T14:00:00Z"));
    let started = std::time::Instant::now();
    while count("SELECT count(*) FROM alarms") > 1 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "retention did not run"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The change up (the instance's last) and its alarm stay; the skips are gone.
    assert_eq!(
        count("SELECT count(*) FROM changes WHERE to_plan = 'hare-1'"),
        1
    );
    assert_eq!(
        count("SELECT count(*) FROM alarms WHERE decision = 'change'"),
        1
    );
    assert_eq!(
        count("SELECT count(*) FROM instances"),
        1,
        "the instance row stays"
    );
    // Not seen within the hour: no longer listed.
    let status = app.status().await;
    assert!(status["instances"][ID.to_string()].is_null(), "{status:#}");
}
