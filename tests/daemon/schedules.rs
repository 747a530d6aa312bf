//! Schedules, black-box: a window opening (at start-up or while running) raises the floor and
//! makes one change up per instance, never a second one for the same opening (not after a
//! restart, not in a DST fold); a freeze holds it until it ends. The daemon runs on an offset
//! clock the test moves to just before an opening.

use std::sync::Arc;
use std::time::Duration;

use cloudamqp_autoscaler::clock::OffsetClock;

use super::guardrails::{WITHIN, at, skipped, spawn};
use crate::support::{ID, Spawn, TestApp, spawn_app};

const BUSINESS_HOURS: &str = r#"
[[schedules]]
name = "business-hours"
instances = ["prod*"]
timezone = "Europe/Stockholm"
start = "0 8 * * 1-5"
duration = "10h"
min_plan = "rabbit-1"
"#;

fn on(clock: &Arc<OffsetClock>, extra: &str) -> Spawn {
    Spawn {
        clock: Some(clock.clone() as Arc<_>),
        ..spawn(extra)
    }
}

async fn scheduled_to(app: &TestApp, to: &str) -> serde_json::Value {
    app.wait_for(&format!("the schedule's change to {to}"), WITHIN, |i| {
        i["plan"] == to && i["change"].is_null() && i["last_change"]["rule"] == "business-hours"
    })
    .await
}

fn runs(app: &TestApp) -> Vec<Vec<serde_json::Value>> {
    app.query("SELECT schedule, decision, reason, opened_at FROM schedule_runs ORDER BY id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_opening_while_running_makes_one_change_up_and_raises_the_floor() {
    // Monday 2026-12-07, two seconds before 08:00 in Stockholm.
    let clock = OffsetClock::starting_at(at("2026-12-07T07:59:58+01:00"));
    let app = spawn_app(on(&clock, BUSINESS_HOURS)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(app.puts().is_empty(), "nothing before the window opens");
    let instance = scheduled_to(&app, "rabbit-1").await;
    assert_eq!(instance["last_change"]["direction"], "up");
    assert_eq!(instance["last_decision"]["rule"], "business-hours");
    assert_eq!(instance["floor"], "rabbit-1", "{instance}");
    assert_eq!(app.fake.plan_changes(), [(ID, "rabbit-1".to_owned())]);
    let runs = runs(&app);
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0][1], "change");
    assert!(
        runs[0][3]
            .as_str()
            .unwrap()
            .starts_with("2026-12-07T07:00:00")
    );
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(
            r#"autoscaler_schedule_next_opening_timestamp_seconds{schedule="business-hours"}"#
        ),
        "{metrics}"
    );
    // Someone moves it back down in the console: the window already acted this opening.
    app.fake.set_plan(ID, "bunny-1");
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(app.puts().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_inside_an_open_window_changes_once_and_a_restart_changes_nothing() {
    let clock = OffsetClock::starting_at(at("2026-12-07T12:00:00+01:00"));
    let app = spawn_app(on(&clock, BUSINESS_HOURS)).await;
    scheduled_to(&app, "rabbit-1").await;
    // Moved down by hand, then a restart inside the same window: no second change.
    app.fake.set_plan(ID, "bunny-1");
    let app = app.stop().await.restart(on(&clock, BUSINESS_HOURS)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(app.fake.plan_changes().len(), 1);
    // The next opening acts again.
    clock.set(at("2026-12-08T07:59:59+01:00"));
    crate::support::until("the next opening's change", || {
        app.fake.plan_changes().len() == 2
    })
    .await;
    assert_eq!(app.fake.plan_changes()[1], (ID, "rabbit-1".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_closing_changes_nothing_and_an_unselected_instance_is_left_alone() {
    // Selected: changed at the opening; the closing changes nothing, and the floor drops.
    let clock = OffsetClock::starting_at(at("2026-12-07T07:59:59+01:00"));
    let app = spawn_app(on(&clock, BUSINESS_HOURS)).await;
    let open = scheduled_to(&app, "rabbit-1").await;
    assert_eq!(open["floor"], "rabbit-1", "{open:#}");
    clock.set(at("2026-12-07T18:00:01+01:00"));
    let closed = app
        .wait_for("the floor back down", WITHIN, |i| i["floor"] != "rabbit-1")
        .await;
    assert_eq!(closed["plan"], "rabbit-1", "{closed:#}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(app.puts().len(), 1, "the closing sent nothing");

    // Not selected: nothing at all.
    let clock = OffsetClock::starting_at(at("2026-12-07T07:59:59+01:00"));
    let other = BUSINESS_HOURS.replace("prod*", "staging-*");
    let app = spawn_app(on(&clock, &other)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(app.puts().is_empty());
    assert!(runs(&app).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freeze_holds_the_schedule_until_it_ends_inside_the_window() {
    let clock = OffsetClock::starting_at(at("2026-12-07T08:30:00+01:00"));
    let extra = format!(
        "{BUSINESS_HOURS}\n[[freeze]]\nfrom = \"2026-12-07T00:00:00+01:00\"\nto = \"2026-12-07T09:00:00+01:00\"\ndirections = [\"up\"]\n"
    );
    let app = spawn_app(on(&clock, &extra)).await;
    let instance = skipped(&app, "frozen").await;
    assert_eq!(instance["last_decision"]["rule"], "business-hours");
    tokio::time::sleep(Duration::from_secs(6)).await;
    // Recorded once, though the schedule tried again at every tick.
    let recorded = runs(&app);
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0][1], "skip");
    assert_eq!(recorded[0][2], "frozen");
    assert!(app.puts().is_empty());
    clock.set(at("2026-12-07T09:00:01+01:00"));
    scheduled_to(&app, "rabbit-1").await;
    assert_eq!(app.fake.plan_changes().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_new_york_the_night_clocks_go_back_a_window_opens_once() {
    // 2026-11-01: 01:30 happens at 05:30Z (EDT) and again at 06:30Z (EST).
    let schedule = r#"
[[schedules]]
name = "business-hours"
timezone = "America/New_York"
start = "30 1 * * *"
duration = "2h"
min_plan = "hare-1"
"#;
    let clock = OffsetClock::starting_at(at("2026-11-01T01:29:58-04:00"));
    let app = spawn_app(on(&clock, schedule)).await;
    scheduled_to(&app, "hare-1").await;
    app.fake.set_plan(ID, "bunny-1");
    // The second 01:30, inside the same window: nothing more.
    clock.set(at("2026-11-01T01:29:58-05:00"));
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(app.fake.plan_changes().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_stockholm_the_night_clocks_go_forward_a_start_in_the_gap_opens_once() {
    // 2027-03-28: 02:00 -> 03:00, so 02:30 does not exist.
    let schedule = r#"
[[schedules]]
name = "business-hours"
timezone = "Europe/Stockholm"
start = "30 2 * * *"
duration = "1h"
min_plan = "hare-1"
"#;
    // Just before the gap: nothing yet; the window opens when the clocks jump to 03:00.
    let clock = OffsetClock::starting_at(at("2027-03-28T01:59:58+01:00"));
    let app = spawn_app(on(&clock, schedule)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(app.puts().is_empty(), "01:59: not open yet");
    clock.set(at("2027-03-28T03:00:00+02:00"));
    let changed = scheduled_to(&app, "hare-1").await;
    assert_eq!(changed["last_change"]["rule"], "business-hours");
    let opened = runs(&app);
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert_eq!(
        opened[0][3]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap(),
        at("2027-03-28T03:00:00+02:00"),
        "the 02:30 that does not exist opens just after the gap"
    );
    // Later inside the same window: no second opening.
    app.fake.set_plan(ID, "bunny-1");
    clock.set(at("2027-03-28T03:45:00+02:00"));
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(app.fake.plan_changes().len(), 1);
}
