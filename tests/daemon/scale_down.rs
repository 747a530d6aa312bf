//! Back down after the spike, black-box: the real daemon against the fake CloudAMQP and its
//! management API, with timings short enough for a test. What CloudAMQP received (PUTs,
//! management reads) is what is asserted.

use std::time::Duration;

use cloudamqp_autoscaler::fake::{Fault, FaultRule};
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{ID, MEMORY_85, Spawn, TestApp, spawn_app};

pub const WITHIN: Duration = Duration::from_secs(20);
pub const MEMORY_97: &str = r#"{"alarm_type":"memory","value":97,"instance_id":359559}"#;
/// 1.2 GiB per node: 74 % of bunny-1's 1.62 GiB limit (2 GiB at the 0.81 watermark).
pub const BUSY: u64 = 1_288_490_189;
/// 300 MiB per node: 18 % of bunny-1's limit.
pub const QUIET: u64 = 300 * 1024 * 1024;

/// The shipped rules with a quick `[scale_down]` and `extra` lines in it.
pub fn rules(extra: &str) -> String {
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/rules.toml")).unwrap();
    format!(
        "{shipped}\n[scale_down]\nquiet_for = \"400ms\"\nafter_up = \"200ms\"\nafter_down = \"1s\"\n\
         check_every = \"100ms\"\nwindow = \"300ms\"\nmemory_headroom = 60\n{extra}\n"
    )
}

pub fn spawn(extra: &str) -> Spawn {
    Spawn {
        rules: Some(rules(extra)),
        ..Spawn::default()
    }
}

/// The plans of every PUT the fake received, in order.
pub fn put_plans(app: &TestApp) -> Vec<String> {
    app.puts()
        .iter()
        .map(|put| put.plan().unwrap_or_default().to_owned())
        .collect()
}

/// Sends the Friday-evening alarm and waits for the change up to finish.
pub async fn spike(app: &TestApp, alarm: &str, to: &str) {
    assert_eq!(app.alarm(alarm).await.status(), StatusCode::ACCEPTED);
    app.wait_for("the change up", WITHIN, |i| {
        i["plan"] == to && i["change"].is_null() && i["last_change"]["direction"] == "up"
    })
    .await;
}

/// Waits until the instance's last look has `reason`.
pub async fn look_says(app: &TestApp, reason: &str) -> Value {
    app.wait_for(&format!("a look saying {reason}"), WITHIN, |i| {
        i["scale_down"]["last_look"]["reason"] == reason
    })
    .await
}

/// Waits until a step down to `to` completed.
pub async fn stepped_down_to(app: &TestApp, to: &str) -> Value {
    app.wait_for(&format!("a step down to {to}"), WITHIN, |i| {
        i["plan"] == to
            && i["change"].is_null()
            && i["last_change"]["direction"] == "down"
            && i["last_change"]["result"] == "completed"
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spike_goes_up_and_comes_back_down_to_the_floor_and_no_further() {
    let app = spawn_app(spawn("")).await;
    spike(&app, MEMORY_85, "hare-1").await;
    let up = app.instance().await;
    assert_eq!(up["floor"], "bunny-1", "{up:#}");
    assert_eq!(up["scale_down"]["to"], "bunny-1", "{up:#}");
    assert!(up["scale_down"]["eligible_at"].is_string(), "{up:#}");
    // The plan it leaves was measured before the PUT: bunny-1's limit is known.
    assert!(!app.fake.management_requests().is_empty());

    let down = stepped_down_to(&app, "bunny-1").await;
    assert_eq!(put_plans(&app), ["hare-1", "bunny-1"]);
    assert_eq!(down["last_change"]["rule"], "scale_down");
    assert_eq!(down["floor"], "bunny-1");
    assert!(down["scale_down"].is_null(), "{down:#}");
    assert!(
        app.fake
            .management_requests()
            .iter()
            .all(|r| r.authorized && r.status == 200),
        "every management read used the instance's own credentials"
    );
    let changes = app.query(
        "SELECT from_plan, to_plan, direction, phase, alarm_id IS NULL FROM changes ORDER BY id",
    );
    assert_eq!(
        serde_json::json!(changes),
        serde_json::json!([
            ["bunny-1", "hare-1", "up", "completed", 0],
            ["hare-1", "bunny-1", "down", "completed", 1]
        ])
    );
    // The look that stepped down is recorded with its change and its figures.
    let looks = app.query(
        "SELECT decision, passed, reason IS NULL, projected_memory_percent < 60 FROM looks WHERE change_id IS NOT NULL",
    );
    assert_eq!(
        serde_json::json!(looks),
        serde_json::json!([["change", 1, 1, 1]])
    );
    let metrics = app.metrics().await;
    for line in [
        r#"autoscaler_plan_changes_total{direction="down",result="completed"} 1"#,
        r#"autoscaler_scale_down_looks_total{result="passed",reason="change"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }
    // At the floor nothing is looked at, and nothing costs a call.
    let reads = app.fake.management_requests().len();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(app.fake.management_requests().len(), reads);
    assert_eq!(put_plans(&app).len(), 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_headroom_holds_it_up_until_the_memory_fits() {
    let app = spawn_app(spawn("")).await;
    app.fake.set_mem_used(ID, BUSY);
    spike(&app, MEMORY_85, "hare-1").await;
    let held = look_says(&app, "headroom").await;
    let detail = held["scale_down"]["last_look"]["detail"].as_str().unwrap();
    assert!(detail.contains("memory_headroom allows 60 %"), "{detail}");
    let percent = held["scale_down"]["last_look"]["projected_memory_percent"]
        .as_f64()
        .unwrap();
    assert!((70.0..80.0).contains(&percent), "{percent}");
    assert_eq!(put_plans(&app), ["hare-1"]);

    app.fake.set_mem_used(ID, QUIET);
    stepped_down_to(&app, "bunny-1").await;
    assert_eq!(put_plans(&app), ["hare-1", "bunny-1"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_management_failure_is_no_evidence() {
    let faults = [
        ("401", Fault::Unauthorized),
        (
            "403",
            Fault::Respond {
                status: 403,
                body: serde_json::json!({"error": "not_authorised"}),
            },
        ),
        ("503", Fault::ServiceUnavailable),
        ("timeout", Fault::Slow(Duration::from_millis(1500))),
        ("malformed", Fault::MalformedBody),
    ];
    for (name, fault) in faults {
        // bunny-1's limit from the rules, so the read before the PUT may fail too.
        let app = spawn_app(
            spawn("memory_limits = { \"bunny-1\" = \"1.6GiB\" }")
                .env("AUTOSCALER__CLOUDAMQP__MANAGEMENT_TIMEOUT", "300ms"),
        )
        .await;
        app.fake.inject(FaultRule::management(fault).times(10_000));
        spike(&app, MEMORY_85, "hare-1").await;
        let held = look_says(&app, "metrics_unavailable").await;
        assert_eq!(held["scale_down"]["last_look"]["passed"], false, "{name}");
        assert_eq!(put_plans(&app), ["hare-1"], "{name}");
        // Only the failure held it: once the API answers, it steps down.
        app.fake.clear_faults();
        stepped_down_to(&app, "bunny-1").await;
        assert_eq!(put_plans(&app), ["hare-1", "bunny-1"], "{name}");
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_restart_the_quiet_period_and_resolves_do_not() {
    let app = spawn_app(spawn("")).await;
    spike(&app, MEMORY_85, "hare-1").await;
    // Reminders every 100 ms for 1.5 s: never 400 ms of quiet.
    for _ in 0..15 {
        assert_eq!(app.alarm(MEMORY_85).await.status(), StatusCode::ACCEPTED);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let instance = app.instance().await;
    assert_eq!(
        instance["scale_down"]["last_look"]["reason"], "not_quiet",
        "{instance:#}"
    );
    assert_eq!(put_plans(&app), ["hare-1"]);
    // Resolve notifications are no alarm: the step down comes on time.
    let resolved = r#"{"alarm_type":"memory","value":40,"instance_id":359559,"resolved":true}"#;
    for _ in 0..5 {
        assert_eq!(app.alarm(resolved).await.status(), StatusCode::ACCEPTED);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stepped_down_to(&app, "bunny-1").await;
    let last_real = app.query("SELECT max(received_at) FROM alarms WHERE resolved = 0")[0][0]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap();
    let down_at = app.query("SELECT intended_at FROM changes WHERE direction = 'down'")[0][0]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap();
    // quiet_for (400 ms) and a full window (300 ms) after the last real alarm, at least.
    assert!(
        down_at.duration_since(last_real) >= jiff::SignedDuration::from_millis(700),
        "{last_real} -> {down_at}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_alarm_or_a_stopped_node_holds_it_up() {
    let app = spawn_app(spawn("")).await;
    spike(&app, MEMORY_85, "hare-1").await;
    app.fake.set_mem_alarm(ID, true);
    let held = look_says(&app, "node_alarm").await;
    assert!(
        held["scale_down"]["last_look"]["detail"]
            .as_str()
            .unwrap()
            .contains("memory alarm")
    );
    app.fake.set_mem_alarm(ID, false);
    app.fake.set_disk_alarm(ID, true);
    app.wait_for("a look seeing the disk alarm", WITHIN, |i| {
        let look = &i["scale_down"]["last_look"];
        look["reason"] == "node_alarm"
            && look["detail"]
                .as_str()
                .is_some_and(|d| d.contains("disk alarm"))
    })
    .await;
    app.fake.set_disk_alarm(ID, false);
    app.fake.set_running(ID, false);
    look_says(&app, "not_ready").await;
    assert_eq!(put_plans(&app), ["hare-1"]);
    app.fake.set_running(ID, true);
    stepped_down_to(&app, "bunny-1").await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_capacity_holds_it_up_until_the_rules_give_one() {
    let app = spawn_app(spawn("")).await;
    // The read before the PUT fails (and its one retry): bunny-1's limit is never seen.
    app.fake
        .inject(FaultRule::management(Fault::ServiceUnavailable).times(2));
    spike(&app, MEMORY_85, "hare-1").await;
    let held = look_says(&app, "capacity_unknown").await;
    assert!(
        held["scale_down"]["last_look"]["detail"]
            .as_str()
            .unwrap()
            .contains("memory_limits"),
        "{held:#}"
    );
    assert_eq!(put_plans(&app), ["hare-1"]);
    // A reload gives the limit: the next looks have it.
    std::fs::write(
        &app.rules_path,
        rules("memory_limits = { \"bunny-1\" = \"1.6GiB\" }"),
    )
    .unwrap();
    assert!(app.handle.reload().ok);
    stepped_down_to(&app, "bunny-1").await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freeze_on_downs_holds_the_step_down_until_it_ends_and_lets_ups_through() {
    let clock = cloudamqp_autoscaler::clock::OffsetClock::starting_at(
        "2026-12-04T17:00:00Z".parse().unwrap(),
    );
    let freeze = "[[freeze]]\nfrom = \"2026-12-04T16:00:00Z\"\nto = \"2026-12-04T18:00:00Z\"\ndirections = [\"down\"]\n";
    let app = spawn_app(Spawn {
        clock: Some(clock.clone() as std::sync::Arc<_>),
        ..spawn(freeze)
    })
    .await;
    // Ups are not frozen: the spike goes up.
    spike(&app, MEMORY_85, "hare-1").await;
    // The quiet broker would step down, but the freeze refuses the look, with its reason,
    // before any call to CloudAMQP's API.
    let held = look_says(&app, "frozen").await;
    assert_eq!(held["plan"], "hare-1", "{held:#}");
    let detail = held["scale_down"]["last_look"]["detail"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(detail.contains("2026-12-04T18:00:00Z"), "{held:#}");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        put_plans(&app),
        ["hare-1"],
        "nothing stepped down while frozen"
    );
    let refused = app.query("SELECT count(*) FROM looks WHERE reason = 'frozen'");
    assert!(refused[0][0].as_i64().unwrap() >= 1, "{refused:?}");
    // The refusal is found again in the history, with its reason.
    let history: Value = app.get("/history").await.json().await.unwrap();
    assert!(
        history["events"].as_array().unwrap().iter().any(|e| {
            e["kind"] == "decision" && e["reason"] == "frozen" && e["direction"] == "down"
        }),
        "{history:#}"
    );

    clock.set("2026-12-04T18:00:00Z".parse().unwrap());
    stepped_down_to(&app, "bunny-1").await;
    assert_eq!(put_plans(&app), ["hare-1", "bunny-1"]);
    app.stop().await;
}
