//! Guardrails, black-box: `[limits]` and `[[freeze]]` refusing a change and then letting
//! it through, each refusal recorded with its reason — the real daemon against the fake
//! CloudAMQP, what CloudAMQP received asserted. Time that must jump (a freeze ending, a
//! window across midnight) is an offset clock the test moves.

use std::sync::Arc;
use std::time::Duration;

use cloudamqp_autoscaler::clock::OffsetClock;
use cloudamqp_autoscaler::fake::{
    FakeCloudAmqp, FakeConfig, Fault, FaultRule, PathMatch, SeedInstance, Timeline,
};
use jiff::Timestamp;
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{ID, KEY, MEMORY_85, Spawn, TestApp, spawn_app};

pub const WITHIN: Duration = Duration::from_secs(15);

/// A ladder, one memory rule with a short cooldown, and `extra`.
pub fn rules(extra: &str) -> String {
    format!(
        r#"[defaults]
cooldown = "100ms"

[ladders]
single = ["bunny-1", "hare-1", "rabbit-1", "panda-1"]

[[rules]]
name = "memory-high"
alarm = "memory"
above = 80
ladder = "single"

{extra}
"#
    )
}

pub fn quick() -> Timeline {
    Timeline {
        lag: Duration::from_millis(50),
        reconfigure: Duration::from_millis(100),
        stuck: false,
    }
}

pub fn spawn(extra: &str) -> Spawn {
    Spawn {
        rules: Some(rules(extra)),
        timeline: quick(),
        ..Spawn::default()
    }
}

pub fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// Waits until the instance's last decision is a skip with `reason`.
pub async fn skipped(app: &TestApp, reason: &str) -> Value {
    app.wait_for(&format!("a skip with {reason}"), WITHIN, |i| {
        i["last_decision"]["reason"] == reason
    })
    .await
}

/// Sends a memory alarm and waits for the change it makes to finish, to `to`.
pub async fn changes_to(app: &TestApp, to: &str) {
    assert_eq!(app.alarm(MEMORY_85).await.status(), StatusCode::ACCEPTED);
    app.wait_for(&format!("the change to {to}"), WITHIN, |i| {
        i["plan"] == to && i["change"].is_null()
    })
    .await;
}

fn reasons(app: &TestApp) -> Vec<String> {
    app.query("SELECT coalesce(reason, decision) FROM decisions ORDER BY id")
        .into_iter()
        .map(|row| row[0].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_changes_refuses_within_its_window_and_allows_after() {
    let app = spawn_app(spawn(
        "[limits]\nmax_changes = { count = 1, per = \"3s\" }\n",
    ))
    .await;
    changes_to(&app, "hare-1").await;
    // Past the 100 ms cooldown: only max_changes holds.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.alarm(MEMORY_85).await.status(), StatusCode::ACCEPTED);
    let instance = skipped(&app, "max_changes").await;
    let detail = instance["last_decision"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("max_changes allows 1") && detail.contains("may start at"),
        "{detail}"
    );
    assert_eq!(app.puts().len(), 1);
    tokio::time::sleep(Duration::from_secs(3)).await;
    changes_to(&app, "rabbit-1").await;
    assert_eq!(app.fake.plan_changes().len(), 2);
    assert_eq!(reasons(&app), ["change", "max_changes", "change"]);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"autoscaler_decisions_total{decision="skip",reason="max_changes"} 1"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_refuses_a_change_up_over_the_cap_and_allows_one_under_it() {
    // bunny-1 is $99, hare-1 $199: the one managed instance would cost $199.
    let over = spawn_app(spawn("[limits]\nmax_monthly_price = 150\n")).await;
    assert_eq!(over.alarm(MEMORY_85).await.status(), StatusCode::ACCEPTED);
    let instance = skipped(&over, "budget").await;
    let detail = instance["last_decision"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("$199/month") && detail.contains("max_monthly_price $150"),
        "{detail}"
    );
    assert!(over.puts().is_empty());

    let under = spawn_app(spawn("[limits]\nmax_monthly_price = 200\n")).await;
    changes_to(&under, "hare-1").await;
    // Shown at the schedule task's next tick (every 5 s).
    let started = std::time::Instant::now();
    loop {
        let metrics = under.metrics().await;
        if metrics.contains("autoscaler_managed_monthly_price 199") {
            break;
        }
        assert!(started.elapsed() < WITHIN, "{metrics}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_alarms_at_once_cannot_both_fit_a_budget_only_one_fits() {
    // Two managed instances on bunny-1 ($99 each): $398 if both went to hare-1, $298 if
    // one did. A cap of $300 lets exactly one change up through.
    let other: u64 = ID + 1;
    let app = spawn_app(Spawn {
        instances: vec![
            SeedInstance::new(ID, "prod", "bunny-1"),
            SeedInstance::new(other, "prod-2", "bunny-1"),
        ],
        ..spawn("[limits]\nmax_monthly_price = 300\n")
    })
    .await;
    let second = format!(r#"{{"alarm_type":"memory","value":85,"instance_id":{other}}}"#);
    let (a, b) = tokio::join!(app.alarm(MEMORY_85), app.alarm(&second));
    assert_eq!(a.status(), StatusCode::ACCEPTED);
    assert_eq!(b.status(), StatusCode::ACCEPTED);
    let started = std::time::Instant::now();
    let decided = loop {
        let decided = app.query(
            "SELECT instance_id, coalesce(reason, decision) FROM decisions \
             ORDER BY instance_id",
        );
        if decided.len() == 2 {
            break decided;
        }
        assert!(started.elapsed() < WITHIN, "{decided:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut reasons: Vec<&str> = decided.iter().map(|row| row[1].as_str().unwrap()).collect();
    reasons.sort_unstable();
    assert_eq!(reasons, ["budget", "change"], "{decided:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.puts().len(), 1, "one PUT only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_catalogue_the_budget_refuses_rather_than_guesses() {
    // CloudAMQP's catalogue is down from the start.
    let fake = FakeCloudAmqp::new(FakeConfig {
        api_key: KEY.into(),
        timeline: quick(),
        instances: vec![SeedInstance::new(ID, "prod", "bunny-1")],
        ..FakeConfig::default()
    });
    fake.inject(
        FaultRule::once(Fault::ServiceUnavailable)
            .path(PathMatch::Exact("/api/plans".into()))
            .times(100_000),
    );
    let running = fake.start_local().await.unwrap();
    let app = spawn_app(Spawn {
        env: vec![(
            "AUTOSCALER__CLOUDAMQP__RETRY_DEADLINE".into(),
            "300ms".into(),
        )],
        fake: Some((fake, running.base_url())),
        ..spawn("[limits]\nmax_monthly_price = 3000\n")
    })
    .await;
    assert_eq!(app.alarm(MEMORY_85).await.status(), StatusCode::ACCEPTED);
    let instance = skipped(&app, "budget").await;
    let detail = instance["last_decision"]["detail"].as_str().unwrap();
    assert!(detail.contains("cannot be checked"), "{detail}");
    assert!(app.puts().is_empty());
    // The catalogue back: the same alarm goes through.
    app.fake.clear_faults();
    changes_to(&app, "hare-1").await;
    drop(running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freeze_refuses_until_it_ends_and_the_next_alarm_acts() {
    let clock = OffsetClock::starting_at(at("2026-12-26T23:59:30+01:00"));
    let app = spawn_app(Spawn {
        clock: Some(clock.clone() as Arc<_>),
        ..spawn(
            "[[freeze]]\nfrom = \"2026-12-24T00:00:00+01:00\"\nto = \"2026-12-27T00:00:00+01:00\"\n",
        )
    })
    .await;
    assert_eq!(app.alarm(MEMORY_85).await.status(), StatusCode::ACCEPTED);
    let instance = skipped(&app, "frozen").await;
    let detail = instance["last_decision"]["detail"].as_str().unwrap();
    assert!(detail.contains("until 2026-12-26T23:00:00Z"), "{detail}");
    assert!(app.puts().is_empty());
    // The freeze ends while the alarm's condition lasts: its reminder acts.
    clock.set(at("2026-12-27T00:00:01+01:00"));
    changes_to(&app, "hare-1").await;
    assert_eq!(reasons(&app), ["frozen", "change"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weekly_freeze_across_midnight_holds_only_its_directions() {
    // Friday 22:00 to Saturday 02:00 in Stockholm, for ups; then one for downs only.
    let clock = OffsetClock::starting_at(at("2026-12-05T01:30:00+01:00"));
    let up_frozen = "[[freeze]]\ndays = [\"fri\"]\nfrom = \"22:00\"\nto = \"02:00\"\ntimezone = \"Europe/Stockholm\"\ndirections = [\"up\"]\n";
    let app = spawn_app(Spawn {
        clock: Some(clock.clone() as Arc<_>),
        ..spawn(up_frozen)
    })
    .await;
    assert_eq!(app.alarm(MEMORY_85).await.status(), StatusCode::ACCEPTED);
    skipped(&app, "frozen").await;
    assert!(app.puts().is_empty());
    clock.set(at("2026-12-05T02:00:00+01:00"));
    changes_to(&app, "hare-1").await;

    let clock = OffsetClock::starting_at(at("2026-12-05T01:30:00+01:00"));
    let app = spawn_app(Spawn {
        clock: Some(clock as Arc<_>),
        ..spawn(&up_frozen.replace("[\"up\"]", "[\"down\"]"))
    })
    .await;
    changes_to(&app, "hare-1").await;
}
