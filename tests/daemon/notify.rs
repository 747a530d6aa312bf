//! Notifications, black-box: the real daemon against the fake CloudAMQP, with a capture
//! server standing in for the webhook, Slack and PagerDuty. What the sinks received is what
//! is asserted: the exact bodies, the signature, retries, repeats held back, secrets kept out
//! of the store, delivery after a restart.

use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::capture::{Capture, Captured, Reply};
use crate::guardrails::{self, skipped};
use crate::support::{ID, MEMORY_85, Spawn, TestApp, spawn_app};

const WITHIN: Duration = Duration::from_secs(15);
const SECRET: &str = "notify-secret-7d1e0c";
const ROUTING_KEY: &str = "routing-key-4b2f9a";

fn env(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// Every sink on `capture`, the webhook signed.
fn all_sinks(capture: &Capture) -> Vec<(String, String)> {
    env(&[
        ("AUTOSCALER__NOTIFY__WEBHOOK__URL", capture.url("/hook")),
        ("AUTOSCALER__NOTIFY__WEBHOOK__SECRET", SECRET.into()),
        (
            "AUTOSCALER__NOTIFY__SLACK__URL",
            capture.url("/slack/T000/B000"),
        ),
        (
            "AUTOSCALER__NOTIFY__PAGERDUTY__ROUTING_KEY",
            ROUTING_KEY.into(),
        ),
        ("AUTOSCALER__NOTIFY__PAGERDUTY__URL", capture.url("/pd")),
    ])
}

/// Waits until `capture` has `count` requests to `path`.
async fn received(capture: &Capture, path: &str, count: usize) -> Vec<Captured> {
    let started = Instant::now();
    loop {
        let seen: Vec<Captured> = capture
            .requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect();
        if seen.len() >= count {
            return seen;
        }
        assert!(
            started.elapsed() < WITHIN,
            "{} of {count} requests to {path}: {seen:?}",
            seen.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn verifies(request: &Captured) -> bool {
    let Some(signature) = request.header("x-autoscaler-signature") else {
        return false;
    };
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(&request.body);
    signature == format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn spike(app: &TestApp) {
    assert_eq!(app.alarm(MEMORY_85).await.status(), StatusCode::ACCEPTED);
    app.wait_for("the change up", WITHIN, |i| {
        i["plan"] == "hare-1" && i["change"].is_null()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_is_heard_on_every_sink_with_the_contract_bodies() {
    let capture = Capture::start(Vec::new()).await;
    let app = spawn_app(Spawn {
        env: all_sinks(&capture),
        ..guardrails::spawn("")
    })
    .await;
    spike(&app).await;

    let hook = received(&capture, "/hook", 2).await;
    let bodies: Vec<Value> = hook.iter().map(Captured::json).collect();
    assert!(hook.iter().all(verifies), "every body signed: {hook:?}");
    assert!(
        hook.iter()
            .all(|r| r.header("content-type") == Some("application/json"))
    );
    let types: Vec<&str> = bodies.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["change.started", "change.completed"], "in order");
    let completed = &bodies[1];
    let keys: Vec<&String> = completed.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "change", "detail", "id", "instance", "mode", "reason", "summary", "time", "type"
        ]
    );
    assert_eq!(completed["mode"], "live");
    assert_eq!(completed["instance"], json!({"id": ID, "name": "prod"}));
    assert_eq!(
        completed["change"],
        json!({"from": "bunny-1", "to": "hare-1", "direction": "up", "rule": "memory-high",
               "result": "completed"})
    );
    assert!(completed["reason"].is_null());
    assert_ne!(bodies[0]["id"], bodies[1]["id"]);
    assert!(
        completed["time"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .is_ok()
    );
    assert_eq!(
        completed["summary"],
        format!("prod ({ID}): plan changed bunny-1 → hare-1 (up, rule memory-high)")
    );

    let slack = received(&capture, "/slack/T000/B000", 2).await;
    assert_eq!(
        slack[0].json(),
        json!({"text": format!("prod ({ID}): changing plan bunny-1 → hare-1 (up, rule memory-high)")})
    );
    // PagerDuty: nothing to trigger; the completed change resolves both keys.
    let pd = received(&capture, "/pd", 2).await;
    let mut keys: Vec<String> = pd
        .iter()
        .map(|r| {
            let body = r.json();
            assert_eq!(body["event_action"], "resolve");
            assert_eq!(body["routing_key"], ROUTING_KEY);
            body["dedup_key"].as_str().unwrap().to_owned()
        })
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            format!("cloudamqp-autoscaler/{ID}/change.failed"),
            format!("cloudamqp-autoscaler/{ID}/ladder.top")
        ]
    );

    // Each sink got each event once; all delivered, nothing pending.
    let status = app
        .wait_for_status("nothing pending", |s| s["notify"]["pending"] == 0)
        .await;
    assert_eq!(status["notify"]["dropped"], 0);
    let sent =
        app.query("SELECT sink, state, attempts FROM deliveries ORDER BY sink, notification_id");
    assert_eq!(
        json!(sent),
        json!([
            ["pagerduty", "sent", 1],
            ["pagerduty", "sent", 1],
            ["slack", "sent", 1],
            ["slack", "sent", 1],
            ["webhook", "sent", 1],
            ["webhook", "sent", 1]
        ])
    );
    // No URL, key or secret in the store or the logs' reach.
    let stored = app.query("SELECT group_concat(body, ' ') FROM notifications");
    let stored = stored[0][0].as_str().unwrap();
    for secret in [
        SECRET,
        ROUTING_KEY,
        "/slack/T000",
        &capture.addr.to_string(),
    ] {
        assert!(!stored.contains(secret), "{secret} in the store");
    }
    let metrics = app.metrics().await;
    for sink in ["webhook", "slack", "pagerduty"] {
        let line = format!(r#"autoscaler_notifications_total{{sink="{sink}",result="sent"}} 2"#);
        assert!(metrics.contains(&line), "{line}\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_honouring_retry_after_and_a_400_is_not() {
    let capture = Capture::start(vec![
        Reply::status(503),
        Reply::status(429).header("Retry-After", "1"),
        Reply::status(200),
        Reply::status(400).body("{\"error\":\"no\"}"),
    ])
    .await;
    let app = spawn_app(Spawn {
        env: env(&[
            ("AUTOSCALER__NOTIFY__WEBHOOK__URL", capture.url("/hook")),
            (
                "AUTOSCALER__NOTIFY__WEBHOOK__EVENTS",
                "change.started,change.completed".into(),
            ),
        ]),
        ..guardrails::spawn("")
    })
    .await;
    spike(&app).await;
    // change.started: 503, 429 (Retry-After: 1), 200; then change.completed waited behind
    // it (one instance's events in order) and got the 400.
    let hook = received(&capture, "/hook", 4).await;
    let ids: Vec<Value> = hook.iter().map(|r| r.json()["id"].clone()).collect();
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[1], ids[2], "the same event, the same id, every attempt");
    assert_ne!(ids[2], ids[3]);
    assert_eq!(hook[3].json()["type"], "change.completed");
    app.wait_for_status("the 400 dropped", |s| s["notify"]["dropped"] == 1)
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(capture.requests().len(), 4, "the 400 is not retried");
    let rows = app.query(
        "SELECT n.kind, d.state, d.attempts, coalesce(d.last_error LIKE '%400%', 0) FROM deliveries AS d \
         JOIN notifications AS n ON n.id = d.notification_id ORDER BY n.id",
    );
    assert_eq!(
        json!(rows),
        json!([
            ["change.started", "sent", 3, 0],
            ["change.completed", "dropped", 1, 1]
        ])
    );
    let metrics = app.metrics().await;
    for line in [
        r#"autoscaler_notifications_total{sink="webhook",result="failed"} 2"#,
        r#"autoscaler_notifications_total{sink="webhook",result="sent"} 1"#,
        r#"autoscaler_notifications_total{sink="webhook",result="dropped"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guardrails_refusal_is_heard_once_per_reason() {
    let capture = Capture::start(Vec::new()).await;
    let freeze = "[[freeze]]\nfrom = \"2020-01-01T00:00:00Z\"\nto = \"2099-01-01T00:00:00Z\"\n";
    let app = spawn_app(Spawn {
        env: env(&[("AUTOSCALER__NOTIFY__WEBHOOK__URL", capture.url("/hook"))]),
        ..guardrails::spawn(freeze)
    })
    .await;
    for _ in 0..3 {
        assert_eq!(app.alarm(MEMORY_85).await.status(), StatusCode::ACCEPTED);
        skipped(&app, "frozen").await;
    }
    let hook = received(&capture, "/hook", 1).await;
    let body = hook[0].json();
    assert_eq!(body["type"], "change.blocked");
    assert_eq!(body["reason"], "frozen");
    assert_eq!(body["change"]["to"], "hare-1");
    assert_eq!(body["change"]["result"], "blocked");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let decided = app.query("SELECT count(*) FROM decisions WHERE reason = 'frozen'");
    assert_eq!(decided[0][0], 3, "three refusals recorded");
    assert_eq!(capture.requests().len(), 1, "one notification");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_pending_at_a_stop_are_delivered_after_the_restart() {
    // The sink is down: nothing listens on its port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = format!("http://127.0.0.1:{port}/hook");
    let app = spawn_app(Spawn {
        env: env(&[("AUTOSCALER__NOTIFY__WEBHOOK__URL", down)]),
        ..guardrails::spawn("")
    })
    .await;
    spike(&app).await;
    app.wait_for_status("two pending", |s| s["notify"]["pending"] == 2)
        .await;
    let stopped = app.stop().await;

    let capture = Capture::start(Vec::new()).await;
    let app = stopped
        .restart(Spawn {
            env: env(&[("AUTOSCALER__NOTIFY__WEBHOOK__URL", capture.url("/hook"))]),
            ..guardrails::spawn("")
        })
        .await;
    let hook = received(&capture, "/hook", 2).await;
    let types: Vec<Value> = hook.iter().map(|r| r.json()["type"].clone()).collect();
    assert_eq!(types, ["change.started", "change.completed"]);
    app.wait_for_status("nothing pending", |s| s["notify"]["pending"] == 0)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_top_of_the_ladder_is_heard_once_per_cooldown() {
    let capture = Capture::start(Vec::new()).await;
    let rules = guardrails::rules("").replace("cooldown = \"100ms\"", "cooldown = \"1h\"");
    let app = spawn_app(Spawn {
        env: env(&[
            ("AUTOSCALER__NOTIFY__WEBHOOK__URL", capture.url("/hook")),
            (
                "AUTOSCALER__NOTIFY__PAGERDUTY__ROUTING_KEY",
                ROUTING_KEY.into(),
            ),
            ("AUTOSCALER__NOTIFY__PAGERDUTY__URL", capture.url("/pd")),
        ]),
        rules: Some(rules),
        instances: vec![cloudamqp_autoscaler::fake::SeedInstance::new(
            ID, "prod", "panda-1",
        )],
        ..guardrails::spawn("")
    })
    .await;
    for _ in 0..3 {
        assert_eq!(app.alarm(MEMORY_85).await.status(), StatusCode::ACCEPTED);
        skipped(&app, "top_of_ladder").await;
    }
    let hook = received(&capture, "/hook", 1).await;
    let body = hook[0].json();
    assert_eq!(body["type"], "ladder.top");
    assert_eq!(body["reason"], "top_of_ladder");
    assert!(body["change"].is_null());
    let pd = received(&capture, "/pd", 1).await;
    let trigger = pd[0].json();
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(
        trigger["dedup_key"],
        format!("cloudamqp-autoscaler/{ID}/ladder.top")
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(capture.requests().len(), 2, "one event, to two sinks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_is_heard_too_marked_dry_run() {
    let capture = Capture::start(Vec::new()).await;
    let app = spawn_app(Spawn {
        live: false,
        env: env(&[("AUTOSCALER__NOTIFY__WEBHOOK__URL", capture.url("/hook"))]),
        ..guardrails::spawn("")
    })
    .await;
    assert_eq!(app.alarm(MEMORY_85).await.status(), StatusCode::ACCEPTED);
    let hook = received(&capture, "/hook", 2).await;
    let bodies: Vec<Value> = hook.iter().map(Captured::json).collect();
    assert!(bodies.iter().all(|b| b["mode"] == "dry-run"), "{bodies:?}");
    assert_eq!(bodies[0]["type"], "change.started");
    assert_eq!(
        bodies[0]["summary"],
        format!("prod ({ID}): would change plan (dry run) bunny-1 → hare-1 (up, rule memory-high)")
    );
    assert_eq!(bodies[1]["type"], "change.completed");
    assert_eq!(bodies[1]["detail"], "dry run: nothing was sent");
    assert!(app.puts().is_empty(), "nothing sent to CloudAMQP");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_reload_is_heard() {
    let capture = Capture::start(Vec::new()).await;
    let app = spawn_app(Spawn {
        env: env(&[("AUTOSCALER__NOTIFY__WEBHOOK__URL", capture.url("/hook"))]),
        ..guardrails::spawn("")
    })
    .await;
    std::fs::write(&app.rules_path, "[[rules]]\nname = \n").unwrap();
    let report = tokio::task::spawn_blocking({
        let handle = app.handle.clone();
        move || handle.reload()
    })
    .await
    .unwrap();
    assert!(!report.ok);
    let hook = received(&capture, "/hook", 1).await;
    let body = hook[0].json();
    assert_eq!(body["type"], "rules.reload_failed");
    assert!(
        body["instance"].is_null() && body["change"].is_null(),
        "{body}"
    );
    assert!(
        body["detail"].as_str().unwrap().contains("rules.toml"),
        "{body}"
    );
    // The rules in force stay: the alarm still acts.
    spike(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_failing_a_day_after_its_event_is_given_up() {
    let clock = cloudamqp_autoscaler::clock::OffsetClock::starting_at(jiff::Timestamp::now());
    let capture = Capture::start(vec![Reply::status(503); 10]).await;
    let app = spawn_app(Spawn {
        clock: Some(clock.clone() as std::sync::Arc<_>),
        env: env(&[
            ("AUTOSCALER__NOTIFY__WEBHOOK__URL", capture.url("/hook")),
            (
                "AUTOSCALER__NOTIFY__WEBHOOK__EVENTS",
                "change.started".into(),
            ),
        ]),
        ..guardrails::spawn("")
    })
    .await;
    spike(&app).await;
    received(&capture, "/hook", 1).await;
    // A day and an hour on: the next attempt fails too, and the delivery is given up.
    clock.advance(Duration::from_secs(25 * 3600));
    app.wait_for_status("given up", |s| s["notify"]["dropped"] == 1)
        .await;
    let rows = app.query("SELECT state, last_error LIKE 'given up after 24h%' FROM deliveries");
    assert_eq!(json!(rows), json!([["dropped", 1]]));
    let tried = capture.requests().len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(capture.requests().len(), tried, "not tried again");
    let metrics = app.metrics().await;
    let line = r#"autoscaler_notifications_total{sink="webhook",result="dropped"} 1"#;
    assert!(metrics.contains(line), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_delivery_for_a_sink_no_longer_configured_is_dropped_at_start() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = spawn_app(Spawn {
        env: env(&[(
            "AUTOSCALER__NOTIFY__SLACK__URL",
            format!("http://127.0.0.1:{port}/down"),
        )]),
        ..guardrails::spawn("")
    })
    .await;
    spike(&app).await;
    app.wait_for_status("two pending", |s| s["notify"]["pending"] == 2)
        .await;
    let app = app.stop().await.restart(guardrails::spawn("")).await;
    let status = app
        .wait_for_status("both dropped", |s| s["notify"]["dropped"] == 2)
        .await;
    assert_eq!(status["notify"]["pending"], 0);
    let rows = app.query("SELECT DISTINCT state, last_error FROM deliveries");
    assert_eq!(
        json!(rows),
        json!([["dropped", "its sink is no longer configured"]])
    );
    let metrics = app.metrics().await;
    let line = r#"autoscaler_notifications_total{sink="slack",result="dropped"} 2"#;
    assert!(metrics.contains(line), "{metrics}");
}
