//! Back down, how far and how often: the floor (moved by a change the daemon did not make,
//! raised by `min_plan`), two rungs with `after_down` between them, an up right after a
//! down, the dry run, the hours, and what a thousand instances above their floor cost.

use std::time::Duration;

use cloudamqp_autoscaler::fake::SeedInstance;
use cloudamqp_autoscaler::store::{BaselineRow, CapacityRow, InstanceRow, Store};
use reqwest::StatusCode;

use crate::scale_down::{MEMORY_97, WITHIN, put_plans, rules, spawn, spike, stepped_down_to};
use crate::support::{ID, MEMORY_85, Spawn, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_outside_the_daemon_moves_the_floor() {
    let app = spawn_app(spawn("")).await;
    spike(&app, MEMORY_85, "hare-1").await;
    // Someone picks rabbit-1 in the console: that is the plan they want.
    assert!(app.fake.set_plan(ID, "rabbit-1"));
    let moved = app
        .wait_for("the floor to move", WITHIN, |i| i["floor"] == "rabbit-1")
        .await;
    assert_eq!(moved["plan"], "rabbit-1");
    assert!(moved["scale_down"].is_null(), "{moved:#}");
    let baseline = app.query("SELECT baseline FROM instances");
    assert_eq!(baseline[0][0], "rabbit-1");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(put_plans(&app), ["hare-1"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rungs_come_down_one_at_a_time_with_after_down_between_and_min_plan_holds() {
    // memory-critical climbs two rungs: bunny-1 -> rabbit-1. hare-1 was never seen, so its
    // limit comes from the rules.
    let app = spawn_app(spawn("memory_limits = { \"hare-1\" = \"3.2GiB\" }")).await;
    spike(&app, MEMORY_97, "rabbit-1").await;
    stepped_down_to(&app, "hare-1").await;
    stepped_down_to(&app, "bunny-1").await;
    assert_eq!(put_plans(&app), ["rabbit-1", "hare-1", "bunny-1"]);
    let finished: Vec<jiff::Timestamp> = app
        .query("SELECT finished_at FROM changes WHERE direction = 'down' ORDER BY id")
        .iter()
        .map(|row| row[0].as_str().unwrap().parse().unwrap())
        .collect();
    let second = app
        .query("SELECT intended_at FROM changes WHERE direction = 'down' ORDER BY id DESC LIMIT 1")
        [0][0]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap();
    assert!(
        second.duration_since(finished[0]) >= jiff::SignedDuration::from_secs(1),
        "after_down (1s) between the steps: {finished:?} {second}"
    );
    app.stop().await;

    // min_plan hare-1 raises the floor above bunny-1: one step only.
    let app = spawn_app(spawn(
        "min_plan = \"hare-1\"\nmemory_limits = { \"hare-1\" = \"3.2GiB\" }",
    ))
    .await;
    spike(&app, MEMORY_97, "rabbit-1").await;
    let down = stepped_down_to(&app, "hare-1").await;
    assert_eq!(down["floor"], "hare-1");
    assert!(down["scale_down"].is_null(), "{down:#}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(put_plans(&app), ["rabbit-1", "hare-1"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_right_after_a_step_down_goes_up_at_once() {
    let mut rules_text = rules("");
    rules_text = rules_text.replace("cooldown = \"30m\"", "cooldown = \"500ms\"");
    let app = spawn_app(Spawn {
        rules: Some(rules_text),
        ..Spawn::default()
    })
    .await;
    spike(&app, MEMORY_85, "hare-1").await;
    stepped_down_to(&app, "bunny-1").await;
    // The down finished just now; the up rules' cooldown counts from the last up.
    assert_eq!(app.alarm(MEMORY_85).await.status(), StatusCode::ACCEPTED);
    app.wait_for("the second change up", WITHIN, |i| {
        i["plan"] == "hare-1" && i["last_change"]["direction"] == "up" && i["change"].is_null()
    })
    .await;
    assert_eq!(put_plans(&app), ["hare-1", "bunny-1", "hare-1"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_records_the_step_down_it_would_make_and_holds_after_down() {
    // Raised for real by a live run ...
    let app = spawn_app(spawn("")).await;
    app.fake.set_mem_used(ID, super::scale_down::BUSY);
    spike(&app, MEMORY_85, "hare-1").await;
    let stopped = app.stop().await;
    stopped.fake.set_mem_used(ID, super::scale_down::QUIET);
    // ... then run dry, with a long after_down.
    let app = stopped
        .restart(Spawn {
            live: false,
            rules: Some(rules("").replace("after_down = \"1s\"", "after_down = \"1h\"")),
            ..Spawn::default()
        })
        .await;
    let would = app
        .wait_for("a would-be step down", WITHIN, |i| {
            i["last_change"]["direction"] == "down" && i["last_change"]["dry_run"] == true
        })
        .await;
    assert_eq!(would["plan"], "hare-1", "a dry run leaves the plan");
    assert_eq!(
        would["scale_down"]["last_look"]["reason"],
        serde_json::Value::Null
    );
    let held = app
        .wait_for("the next look", WITHIN, |i| {
            i["scale_down"]["last_look"]["reason"] == "too_soon"
        })
        .await;
    assert!(
        held["scale_down"]["last_look"]["detail"]
            .as_str()
            .unwrap()
            .contains("after_down 1h"),
        "{held:#}"
    );
    assert_eq!(put_plans(&app), ["hare-1"]);
    let recorded = app.query(
        "SELECT l.decision, c.dry_run, c.direction, c.to_plan FROM looks AS l JOIN changes AS c ON c.id = l.change_id",
    );
    assert_eq!(
        serde_json::json!(recorded),
        serde_json::json!([["would_change", 1, "down", "bunny-1"]])
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_the_hours_it_waits_for_them() {
    // A one-minute window twelve hours from now, every day: now is outside it.
    let open = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(12))
        .unwrap()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC);
    let from = open.time().strftime("%H:%M").to_string();
    let to = open
        .time()
        .wrapping_add(jiff::SignedDuration::from_mins(1))
        .strftime("%H:%M")
        .to_string();
    let hours = format!("hours = {{ from = \"{from}\", to = \"{to}\", timezone = \"UTC\" }}");
    let app = spawn_app(spawn(&hours)).await;
    spike(&app, MEMORY_85, "hare-1").await;
    let held = crate::scale_down::look_says(&app, "outside_hours").await;
    let eligible: jiff::Timestamp = held["scale_down"]["eligible_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let expected = open.with().second(0).subsec_nanosecond(0).build().unwrap();
    assert_eq!(eligible, expected.timestamp(), "{held:#}");
    assert_eq!(put_plans(&app), ["hare-1"]);
    app.stop().await;
}

/// A thousand instances above their floor: each look is one instance read and one
/// management read, and each instance is looked at about once per `check_every`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_instances_cost_two_calls_each_per_check_every() {
    const COUNT: u64 = 1000;
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let (store, _) = Store::open(&state_dir).unwrap();
    let seen = jiff::Timestamp::now();
    let instances: Vec<SeedInstance> = (1..=COUNT)
        .map(|id| SeedInstance::new(id, &format!("i-{id}"), "hare-1"))
        .collect();
    for id in 1..=COUNT {
        store
            .upsert_instance(InstanceRow {
                id,
                name: Some(format!("i-{id}")),
                providerid: None,
                plan: Some("hare-1".into()),
                updated_at: seen,
            })
            .await
            .unwrap();
        store
            .set_baseline(BaselineRow {
                instance_id: id,
                plan: "bunny-1".into(),
                since: seen,
            })
            .await
            .unwrap();
        store
            .record_capacity(CapacityRow {
                instance_id: id,
                plan: "bunny-1".into(),
                mem_limit: 1_739_461_754,
                nodes: 1,
                seen_at: seen,
            })
            .await
            .unwrap();
    }
    store.close().await;
    // Looks every second, a window far too long to step anything down.
    let text = rules("")
        .replace("check_every = \"100ms\"", "check_every = \"1s\"")
        .replace("window = \"300ms\"", "window = \"1h\"");
    let app = spawn_app(Spawn {
        rules: Some(text),
        instances,
        state_dir: Some(state_dir),
        ..Spawn::default()
    })
    .await;
    let started = std::time::Instant::now();
    // Until every instance has been looked at once (recorded), and a second more.
    crate::support::until("a look at every instance", || {
        app.query("SELECT count(DISTINCT instance_id) FROM looks")[0][0] == COUNT
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let elapsed = started.elapsed();
    let requests = app.fake.requests();
    let reads = requests
        .iter()
        .filter(|r| r.method == "GET" && r.path.starts_with("/api/instances/"))
        .count() as u64;
    let management = app.fake.management_requests().len() as u64;
    // At most one look per instance per second elapsed, plus the first.
    let bound = COUNT * (elapsed.as_secs() + 1);
    assert!(
        reads <= bound && management <= bound,
        "{reads} {management} > {bound}"
    );
    assert!(reads >= COUNT, "every instance was looked at: {reads}");
    assert!(management <= reads);
    assert!(app.puts().is_empty());
    let _ = dir;
    app.stop().await;
}
