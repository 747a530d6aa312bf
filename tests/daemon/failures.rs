//! CloudAMQP misbehaving: retries that end well, refusals that are not hammered, changes
//! that never finish.

use std::time::Duration;

use cloudamqp_autoscaler::fake::{Fault, FaultRule, PathMatch, Timeline};
use reqwest::StatusCode;

use crate::support::{ID, MEMORY_85, Spawn, spawn_app};

const WITHIN: Duration = Duration::from_secs(20);

fn put_fault(fault: Fault) -> FaultRule {
    FaultRule {
        method: Some("PUT".into()),
        path: PathMatch::Exact(format!("/api/instances/{ID}")),
        fault,
        times: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_then_unavailable_then_accepted_is_one_completed_change() {
    let app = spawn_app(Spawn::default()).await;
    app.fake.inject(put_fault(Fault::TooManyRequests {
        retry_after: Some(1),
    }));
    app.fake.inject(put_fault(Fault::ServiceUnavailable));
    assert_eq!(app.alarm(MEMORY_85).await.status(), StatusCode::ACCEPTED);
    let instance = app.wait_for_result(WITHIN).await;
    assert_eq!(instance["last_change"]["result"], "completed");
    let statuses: Vec<u16> = app.puts().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 503, 200]);
    assert_eq!(app.fake.plan_changes(), vec![(ID, "hare-1".to_owned())]);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"autoscaler_api_calls_total{call="change_plan",status="429"} 1"#),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_instance_is_not_hammered() {
    let app = spawn_app(Spawn::default()).await;
    // Someone started a change in the console: the instance is not ready, a PUT gets 422.
    app.fake.inject(FaultRule {
        method: Some("PUT".into()),
        path: PathMatch::Any,
        fault: Fault::Respond {
            status: 422,
            body: serde_json::json!({"error": "Please wait for your cluster to be configured before trying to update it"}),
        },
        times: 10,
    });
    app.alarm(MEMORY_85).await;
    let instance = app.wait_for_result(WITHIN).await;
    assert_eq!(instance["last_change"]["result"], "failed");
    assert_eq!(instance["last_change"]["needs_attention"], true);
    for _ in 0..5 {
        app.alarm(MEMORY_85).await;
    }
    app.wait_for("the reminders decided", WITHIN, |i| {
        i["last_decision"]["reason"] == "cooldown"
    })
    .await;
    assert_eq!(
        app.fake.put_attempts(),
        1,
        "a 422 is never retried and the cooldown holds"
    );
    let detail = app.query("SELECT detail FROM changes")[0][0]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(detail.contains("busy"), "{detail}");
    app.stop().await;
}

/// An instance locked (still configuring) for longer than the retry deadline: every PUT was
/// refused, so nothing was started. The change fails at once for a human, rather than being
/// watched as if it might have started (where a configuring instance would look like ours).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_refused_until_the_deadline_fails_at_once_without_watching() {
    let app = spawn_app(Spawn::default().env("AUTOSCALER__CLOUDAMQP__RETRY_DEADLINE", "2s")).await;
    app.fake.inject(FaultRule {
        times: 100,
        ..put_fault(Fault::Locked)
    });
    app.alarm(MEMORY_85).await;
    let instance = app.wait_for_result(WITHIN).await;
    assert_eq!(instance["last_change"]["result"], "failed", "{instance}");
    assert_eq!(instance["last_change"]["needs_attention"], true);
    let detail = app.query("SELECT detail FROM changes")[0][0]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        detail.contains("refused the plan change every time"),
        "{detail}"
    );
    assert!(app.fake.plan_changes().is_empty());
    let requests = app.fake.requests();
    let last_put = requests.iter().rposition(|r| r.method == "PUT").unwrap();
    let reads_after_the_puts = requests[last_put..]
        .iter()
        .filter(|r| r.method == "GET" && r.path == format!("/api/instances/{ID}"))
        .count();
    assert_eq!(
        reads_after_the_puts, 0,
        "no watching for a change that cannot have started"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_change_times_out_needs_a_human_and_is_not_sent_again() {
    let app = spawn_app(Spawn {
        timeline: Timeline::stuck(),
        change_timeout: "1s",
        ..Spawn::default()
    })
    .await;
    app.alarm(MEMORY_85).await;
    let instance = app.wait_for_result(WITHIN).await;
    assert_eq!(instance["last_change"]["result"], "timed_out");
    assert_eq!(instance["last_change"]["needs_attention"], true);
    assert!(instance["cooldown_until"].is_string());
    for _ in 0..3 {
        app.alarm(MEMORY_85).await;
    }
    app.wait_for("the reminders decided", WITHIN, |i| {
        i["last_decision"]["reason"] == "cooldown"
    })
    .await;
    assert_eq!(app.fake.put_attempts(), 1);
    let rows = app.query("SELECT phase, needs_attention FROM changes");
    assert_eq!(
        serde_json::json!(rows),
        serde_json::json!([["timed_out", 1]])
    );
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"autoscaler_plan_changes_total{direction="up",result="timed_out"} 1"#),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_the_catalogue_forbids_is_refused_locally() {
    let rules = r#"
[[rules]]
name = "to-shared"
alarm = "memory"
[rules.targets]
"bunny-1" = "tiger"
"#;
    let app = spawn_app(Spawn {
        rules: Some(rules.into()),
        ..Spawn::default()
    })
    .await;
    app.alarm(MEMORY_85).await;
    let instance = app
        .wait_for("a decision", WITHIN, |i| !i["last_decision"].is_null())
        .await;
    assert_eq!(instance["last_decision"]["reason"], "move_not_allowed");
    assert_eq!(app.fake.put_attempts(), 0);
    app.stop().await;
}
