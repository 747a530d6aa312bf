//! One spike, one change: the plan change happy path, duplicates, reminders, dry run, the
//! cost of an alarm in API calls.

use std::time::Duration;

use cloudamqp_autoscaler::fake::Timeline;
use reqwest::StatusCode;

use crate::support::{ID, MEMORY_85, Spawn, spawn_app};

const WITHIN: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_alarm_makes_exactly_one_put_tracked_to_completion() {
    let app = spawn_app(Spawn {
        timeline: Timeline {
            lag: Duration::from_millis(300),
            reconfigure: Duration::from_millis(500),
            stuck: false,
        },
        ..Spawn::default()
    })
    .await;
    assert_eq!(app.alarm(MEMORY_85).await.status(), StatusCode::ACCEPTED);
    let instance = app.wait_for_result(WITHIN).await;

    let puts = app.puts();
    assert_eq!(puts.len(), 1, "{puts:?}");
    assert_eq!(puts[0].path, format!("/api/instances/{ID}"));
    assert_eq!(puts[0].body.as_ref().unwrap()["plan"], "hare-1");
    assert!(puts[0].authorized && puts[0].auth_scheme.as_deref() == Some("Basic"));
    assert!(
        app.fake
            .requests()
            .iter()
            .all(|r| !r.path.contains("/actions/"))
    );
    assert_eq!(app.fake.instance(ID).unwrap().plan, "hare-1");

    assert_eq!(instance["plan"], "hare-1");
    assert_eq!(instance["name"], "prod");
    assert_eq!(instance["last_change"]["from"], "bunny-1");
    assert_eq!(instance["last_change"]["to"], "hare-1");
    assert_eq!(instance["last_change"]["result"], "completed");
    assert_eq!(instance["last_change"]["needs_attention"], false);
    assert!(instance["cooldown_until"].is_string(), "{instance}");
    assert_eq!(instance["last_decision"]["decision"], "change_plan");
    assert_eq!(instance["last_decision"]["rule"], "memory-high");
    // The lag was not mistaken for completion: polls saw the change through.
    assert!(app.instance_reads().len() >= 2);

    let changes = app.query("SELECT from_plan, to_plan, phase, accepted_at IS NOT NULL, finished_at IS NOT NULL, dry_run FROM changes");
    assert_eq!(
        serde_json::json!(changes),
        serde_json::json!([["bunny-1", "hare-1", "completed", 1, 1, 0]])
    );
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"autoscaler_plan_changes_total{direction="up",result="completed"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"autoscaler_decisions_total{decision="change",reason=""} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"autoscaler_api_calls_total{call="change_plan",status="200"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("autoscaler_changes_in_flight 0"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_identical_alarms_make_one_put_and_reminders_none() {
    let app = spawn_app(Spawn {
        timeline: Timeline {
            lag: Duration::from_millis(200),
            reconfigure: Duration::from_millis(800),
            stuck: false,
        },
        ..Spawn::default()
    })
    .await;
    let sends = (0..20).map(|_| app.alarm(MEMORY_85));
    for response in futures_util::future::join_all(sends).await {
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    // Reminders while the change runs ...
    for _ in 0..5 {
        assert_eq!(app.alarm(MEMORY_85).await.status(), StatusCode::ACCEPTED);
    }
    app.wait_for_result(WITHIN).await;
    // ... and after it, inside the cooldown.
    for _ in 0..5 {
        assert_eq!(app.alarm(MEMORY_85).await.status(), StatusCode::ACCEPTED);
    }
    let decided = app.wait_for("every alarm decided", WITHIN, |_| {
        app.query("SELECT count(*) FROM alarms WHERE decided_at IS NULL")[0][0] == 0
    });
    decided.await;
    assert_eq!(app.puts().len(), 1);
    let reasons = app.query("SELECT decision, reason, count(*) FROM decisions GROUP BY decision, reason ORDER BY decision, reason");
    let count = |decision: &str, reason: Option<&str>| {
        reasons
            .iter()
            .find(|r| r[0] == decision && r[1].as_str() == reason)
            .map_or(0, |r| r[2].as_i64().unwrap())
    };
    assert_eq!(count("change", None), 1, "{reasons:?}");
    assert_eq!(
        count("skip", Some("change_in_flight")) + count("skip", Some("cooldown")),
        29,
        "{reasons:?}"
    );
    assert!(count("skip", Some("cooldown")) >= 5, "{reasons:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_sends_nothing_records_everything_and_holds_the_cooldown() {
    let app = spawn_app(Spawn {
        live: false,
        ..Spawn::default()
    })
    .await;
    assert_eq!(app.status().await["mode"], "dry-run");
    assert_eq!(app.alarm(MEMORY_85).await.status(), StatusCode::ACCEPTED);
    let instance = app.wait_for_result(WITHIN).await;
    assert_eq!(instance["last_decision"]["decision"], "would_change_plan");
    assert_eq!(instance["last_change"]["to"], "hare-1");
    assert_eq!(instance["last_change"]["dry_run"], true);
    assert!(instance["cooldown_until"].is_string());
    for _ in 0..3 {
        app.alarm(MEMORY_85).await;
    }
    app.wait_for("the reminders decided", WITHIN, |i| {
        i["last_decision"]["reason"] == "cooldown"
    })
    .await;
    assert!(app.puts().is_empty(), "a dry run never sends a plan change");
    assert_eq!(app.fake.instance(ID).unwrap().plan, "bunny-1");
    let rows =
        app.query("SELECT decision, from_plan, to_plan, detail FROM decisions ORDER BY id LIMIT 1");
    assert_eq!(rows[0][0], "would_change");
    assert_eq!(
        (rows[0][1].as_str(), rows[0][2].as_str()),
        (Some("bunny-1"), Some("hare-1"))
    );
    assert!(
        rows[0][3]
            .as_str()
            .unwrap()
            .contains("would change plan bunny-1 -> hare-1")
    );
    let changes = app.query("SELECT phase, dry_run FROM changes");
    assert_eq!(
        serde_json::json!(changes),
        serde_json::json!([["completed", 1]])
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_alarms_cost_one_instance_read_and_one_put_besides_the_polling() {
    let app = spawn_app(Spawn {
        timeline: Timeline {
            lag: Duration::ZERO,
            reconfigure: Duration::from_millis(500),
            stuck: false,
        },
        ..Spawn::default()
    })
    .await;
    for _ in 0..50 {
        assert_eq!(app.alarm(MEMORY_85).await.status(), StatusCode::ACCEPTED);
    }
    app.wait_for_result(WITHIN).await;
    app.wait_for("the fifty alarms decided", WITHIN, |_| {
        app.query("SELECT count(*) FROM alarms WHERE decided_at IS NULL")[0][0] == 0
    })
    .await;
    let requests = app.fake.requests();
    let put_at = requests
        .iter()
        .position(|r| r.method == "PUT")
        .expect("one PUT");
    // One instance read; the plan catalogue is fetched once and cached for an hour.
    let before_put = &requests[..put_at];
    let instance_reads = before_put
        .iter()
        .filter(|r| r.path.starts_with("/api/instances"))
        .count();
    assert_eq!(instance_reads, 1, "{before_put:?}");
    assert!(
        before_put.iter().filter(|r| r.path == "/api/plans").count() <= 1,
        "{before_put:?}"
    );
    assert_eq!(requests.iter().filter(|r| r.method == "PUT").count(), 1);

    // Reminders after the change, inside the cooldown, cost no API call at all.
    let calls_after_change = app.fake.requests().len();
    for _ in 0..10 {
        app.alarm(MEMORY_85).await;
    }
    app.wait_for("the late reminders decided", WITHIN, |_| {
        app.query("SELECT count(*) FROM alarms WHERE decided_at IS NULL")[0][0] == 0
    })
    .await;
    assert_eq!(app.instance().await["last_decision"]["reason"], "cooldown");
    assert_eq!(app.fake.requests().len(), calls_after_change);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_that_cannot_act_are_decided_without_reading_the_instance() {
    let app = spawn_app(Spawn::default()).await;
    for body in [
        r#"{"alarm_type":"memory","value":50,"instance_id":359559}"#,
        r#"{"alarm_type":"ssh","instance_id":359559}"#,
        r#"{"alarm_type":"memory","value":99,"instance_id":359559,"resolved":true}"#,
    ] {
        app.alarm(body).await;
    }
    app.wait_for("three decisions", WITHIN, |_| {
        app.query("SELECT count(*) FROM decisions")[0][0] == 3
    })
    .await;
    let reasons: Vec<String> = app
        .query("SELECT reason FROM decisions ORDER BY alarm_id")
        .into_iter()
        .map(|r| r[0].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(reasons, ["below_threshold", "no_matching_rule", "resolved"]);
    assert!(app.fake.requests().is_empty(), "{:?}", app.fake.requests());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_naming_its_instance_by_uuid_is_mapped_to_the_id() {
    let app = spawn_app(Spawn::default()).await;
    let uuid = app.fake.instance(ID).unwrap().providerid;
    let body = format!(r#"{{"alarm_type":"memory","value":85,"instance_id":"{uuid}"}}"#);
    assert_eq!(app.alarm(&body).await.status(), StatusCode::ACCEPTED);
    let instance = app.wait_for_result(WITHIN).await;
    assert_eq!(instance["last_change"]["to"], "hare-1");
    let unknown = r#"{"alarm_type":"memory","value":85,"instance_id":"00000000-0000-4000-8000-000000000000"}"#;
    app.alarm(unknown).await;
    app.wait_for("the unknown UUID decided", WITHIN, |_| {
        app.query("SELECT count(*) FROM decisions WHERE reason = 'instance_unknown'")[0][0] == 1
    })
    .await;
    assert_eq!(app.puts().len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_without_instance_acts_on_the_default_instance_or_is_skipped() {
    let without = r#"{"alarm_type":"memory","value":85}"#;
    let app = spawn_app(Spawn::default()).await;
    app.alarm(without).await;
    app.wait_for("the decision", WITHIN, |_| {
        app.query("SELECT count(*) FROM decisions")[0][0] == 1
    })
    .await;
    assert_eq!(
        app.query("SELECT reason FROM decisions")[0][0],
        "instance_unknown"
    );
    assert!(app.puts().is_empty());
    app.stop().await;

    let app = spawn_app(Spawn {
        default_instance: Some(ID.to_string()),
        ..Spawn::default()
    })
    .await;
    app.alarm(without).await;
    let instance = app.wait_for_result(WITHIN).await;
    assert_eq!(instance["last_change"]["to"], "hare-1");
    assert_eq!(app.puts().len(), 1);
    app.stop().await;
}

/// Alarms our own state decides (here: reminders while a change is in flight) are recorded
/// already decided, in their own transaction: decided when the 202 comes, without a place
/// in the queue (one place here, with the one decider busy) and without an API call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_our_own_state_decides_are_decided_before_their_202() {
    let app = spawn_app(Spawn {
        timeline: Timeline {
            lag: Duration::ZERO,
            reconfigure: Duration::from_secs(3),
            stuck: false,
        },
        queue_capacity: 1,
        max_concurrent: 1,
        ..Spawn::default()
    })
    .await;
    assert_eq!(app.alarm(MEMORY_85).await.status(), StatusCode::ACCEPTED);
    app.wait_for("the change in flight", WITHIN, |i| !i["change"].is_null())
        .await;

    let reads_before = app.instance_reads().len();
    let reminders = (0..30).map(|_| async {
        let response = app.alarm(MEMORY_85).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let body: serde_json::Value = response.json().await.unwrap();
        body["alarm_id"].as_str().unwrap().parse::<i64>().unwrap()
    });
    let ids = futures_util::future::join_all(reminders).await;
    // No read per reminder: the only reads meanwhile are the tracker's polls (a few a
    // second), far fewer than the 30 reminders.
    let reads_during = app.instance_reads().len() - reads_before;
    assert!(
        reads_during < 10,
        "{reads_during} instance reads during 30 reminders"
    );
    for id in ids {
        let decided = app.query(&format!(
            "SELECT a.decided_at IS NOT NULL, d.reason FROM alarms a \
             JOIN decisions d ON d.alarm_id = a.id WHERE a.id = {id}"
        ));
        assert_eq!(
            decided,
            [vec![
                serde_json::json!(1),
                serde_json::json!("change_in_flight")
            ]],
            "alarm {id}"
        );
    }
    app.wait_for_result(WITHIN).await;
    assert_eq!(app.puts().len(), 1);
    app.stop().await;
}

/// A rule that picks instances by name acts on an alarm that names the instance only by id
/// or by a UUID already in the cache: the name is learnt (a read, or the instance list),
/// never assumed to be missing. An instance the rule does not pick is skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_selecting_by_name_act_on_alarms_naming_an_id_or_a_cached_uuid() {
    use cloudamqp_autoscaler::fake::SeedInstance;
    const OTHER: u64 = 359_560;
    const THIRD: u64 = 359_561;
    let rules = r#"
[ladders]
single = ["bunny-1", "hare-1", "rabbit-1"]

[[rules]]
name = "prod-memory"
alarm = "memory"
above = 80
ladder = "single"
instances = ["prod*"]
"#;
    let app = spawn_app(Spawn {
        rules: Some(rules.into()),
        instances: vec![
            SeedInstance::new(ID, "prod", "bunny-1"),
            SeedInstance::new(OTHER, "staging", "bunny-1"),
            SeedInstance::new(THIRD, "prod-eu", "bunny-1"),
        ],
        ..Spawn::default()
    })
    .await;
    // By id, never seen before: read, then picked by its name.
    assert_eq!(app.alarm(MEMORY_85).await.status(), StatusCode::ACCEPTED);
    app.wait_for_result(WITHIN).await;
    // By UUID: the first lists the instances (and fills the cache) ...
    let uuid_of = |id| app.fake.instance(id).unwrap().providerid;
    let staging = format!(
        r#"{{"alarm_type":"memory","value":85,"instance_id":"{}"}}"#,
        uuid_of(OTHER)
    );
    app.alarm(&staging).await;
    // ... so this one is a cache hit, and must still be known as "prod-eu".
    let prod_eu = format!(
        r#"{{"alarm_type":"memory","value":85,"instance_id":"{}"}}"#,
        uuid_of(THIRD)
    );
    app.alarm(&prod_eu).await;
    let within = std::time::Instant::now() + WITHIN;
    while app.puts().len() < 2 || app.query("SELECT count(*) FROM decisions")[0][0] != 3 {
        assert!(std::time::Instant::now() < within, "{:?}", app.puts());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let paths: Vec<String> = app.puts().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            format!("/api/instances/{ID}"),
            format!("/api/instances/{THIRD}")
        ]
    );
    let staging_reason = app.query(&format!(
        "SELECT reason FROM decisions WHERE instance_id = {OTHER}"
    ));
    assert_eq!(
        staging_reason,
        [vec![serde_json::json!("instance_not_selected")]]
    );
    app.stop().await;
}

/// `/status` `cooldown_until` is when every rule that could change the instance from its
/// plan is past its cooldown, with the rules in force: after memory-high's change (30 min),
/// memory-critical (1 h) could still act from hare-1 and is held back for the hour; a reload
/// that shortens it shows at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooldown_until_follows_the_rules_that_could_act_and_a_reload() {
    let app = spawn_app(Spawn::default()).await;
    assert_eq!(app.alarm(MEMORY_85).await.status(), StatusCode::ACCEPTED);
    let instance = app.wait_for_result(WITHIN).await;
    assert_eq!(instance["last_decision"]["rule"], "memory-high");
    let finished: jiff::Timestamp = instance["last_change"]["finished_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let until = |instance: &serde_json::Value| -> jiff::Timestamp {
        instance["cooldown_until"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(
        until(&instance),
        finished + jiff::SignedDuration::from_hours(1),
        "{instance}"
    );

    let shipped = std::fs::read_to_string(&app.rules_path).unwrap();
    let shorter = shipped.replacen("cooldown = \"1h\"", "cooldown = \"10m\"", 2);
    assert_ne!(shorter, shipped);
    std::fs::write(&app.rules_path, shorter).unwrap();
    assert!(app.handle.reload().ok);
    let instance = app.status().await["instances"][ID.to_string()].clone();
    assert_eq!(
        until(&instance),
        finished + jiff::SignedDuration::from_mins(30),
        "memory-high's 30 minutes are now the longest: {instance}"
    );
    app.stop().await;
}
