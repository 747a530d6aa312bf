//! Disk rules, black-box: a disk alarm grows the extra disk one size with `PUT
//! /api/instances/{id}/disk`, followed until every node has the new size; single flight with
//! plan changes; its own cooldown; held by freezes, never by the budget.

use std::time::Duration;

use cloudamqp_autoscaler::fake::{SeedInstance, Timeline};
use serde_json::json;

use crate::support::{ID, MEMORY_85, Spawn, spawn_app};

const WITHIN: Duration = Duration::from_secs(15);
const DISK_10: &str = r#"{"alarm_type":"disk","value":10,"instance_id":359559}"#;

/// A memory ladder and a disk rule, each with its own cooldown; `extra` appended.
fn rules(extra: &str) -> String {
    format!(
        r#"
[defaults]
cooldown = "30m"

[ladders]
single = ["bunny-1", "hare-1", "rabbit-1"]

[[rules]]
name = "memory-high"
alarm = "memory"
above = 80
ladder = "single"

[[rules]]
name = "disk-low"
alarm = "disk"
below = 15
disk_sizes = [25, 50]
cooldown = "6h"
{extra}"#
    )
}

fn disk_puts(app: &crate::support::TestApp) -> Vec<serde_json::Value> {
    app.puts()
        .into_iter()
        .filter(|put| put.path == format!("/api/instances/{ID}/disk"))
        .map(|put| put.body.unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_alarm_grows_the_disk_one_size_and_leaves_the_plan_rules_free() {
    let app = spawn_app(Spawn {
        rules: Some(rules("")),
        timeline: Timeline {
            lag: Duration::from_millis(200),
            reconfigure: Duration::from_millis(600),
            stuck: false,
        },
        ..Spawn::default()
    })
    .await;
    assert_eq!(app.alarm(DISK_10).await.status(), 202);
    // In flight: /status says what, in numbers; a memory alarm meanwhile waits its turn.
    let during = app
        .wait_for("the disk change in flight", WITHIN, |i| {
            !i["change"].is_null()
        })
        .await;
    assert_eq!(during["change"]["kind"], "disk", "{during:#}");
    assert_eq!(during["change"]["from"], 0);
    assert_eq!(during["change"]["to"], 25);
    assert_eq!(during["change"]["direction"], "up");
    assert_eq!(app.alarm(MEMORY_85).await.status(), 202);
    let held = app
        .wait_for("the memory alarm decided", WITHIN, |i| {
            i["last_decision"]["reason"] == "change_in_flight"
        })
        .await;
    assert!(
        held["last_decision"]["detail"]
            .as_str()
            .unwrap()
            .contains("extra disk 0 -> 25 GB"),
        "{held:#}"
    );

    let done = app
        .wait_for("the disk change to complete", WITHIN, |i| {
            i["change"].is_null() && i["last_change"]["result"] == "completed"
        })
        .await;
    assert_eq!(
        disk_puts(&app),
        [json!({"extra_disk_size": 25, "allow_downtime": false})]
    );
    assert_eq!(app.fake.disk_sizes(ID).unwrap(), [25]);
    assert_eq!(done["last_change"]["kind"], "disk");
    assert_eq!(done["last_change"]["from"], 0);
    assert_eq!(done["last_change"]["to"], 25);
    assert_eq!(done["disk"], 25);
    assert_eq!(
        done["plan"], "bunny-1",
        "a disk change leaves the plan alone"
    );
    assert_eq!(
        app.query("SELECT kind, from_plan, to_plan, phase, direction FROM changes"),
        [[
            json!("disk"),
            json!("0"),
            json!("25"),
            json!("completed"),
            json!("up")
        ]]
    );

    // The disk rule cools down for 6 h, from our state, without a call ...
    let calls = app.fake.requests().len();
    assert_eq!(app.alarm(DISK_10).await.status(), 202);
    let cooling = app
        .wait_for("the disk cooldown", WITHIN, |i| {
            i["last_decision"]["reason"] == "cooldown"
        })
        .await;
    assert_eq!(cooling["last_decision"]["rule"], "disk-low");
    assert_eq!(
        app.fake.requests().len(),
        calls,
        "a cooldown costs no API call"
    );
    // ... while the plan rules are not held by it: memory climbs at once.
    assert_eq!(app.alarm(MEMORY_85).await.status(), 202);
    let climbed = app
        .wait_for("the plan change", WITHIN, |i| {
            i["last_change"]["kind"] == "plan" && i["last_change"]["result"] == "completed"
        })
        .await;
    assert_eq!(climbed["plan"], "hare-1");
    assert_eq!(climbed["last_change"]["from"], "bunny-1");
    assert_eq!(disk_puts(&app).len(), 1);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"autoscaler_disk_changes_total{result="completed"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"autoscaler_plan_changes_total{direction="up",result="completed"} 1"#),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_largest_size_nothing_is_sent_and_the_budget_never_holds_a_disk() {
    // bunny-1 alone costs more than the budget: a plan change up would be refused, a disk
    // change is not the budget's.
    let app = spawn_app(Spawn {
        rules: Some(rules("\n[limits]\nmax_monthly_price = 10\n")),
        ..Spawn::default()
    })
    .await;
    assert_eq!(app.alarm(DISK_10).await.status(), 202);
    let grown = app
        .wait_for("the disk change to complete", WITHIN, |i| {
            i["last_change"]["result"] == "completed"
        })
        .await;
    assert_eq!(grown["last_change"]["to"], 25);
    assert_eq!(app.alarm(MEMORY_85).await.status(), 202);
    app.wait_for("the budget refusal", WITHIN, |i| {
        i["last_decision"]["reason"] == "budget"
    })
    .await;
    let stopped = app.stop().await;

    // Someone grew it to 50 (the rule's largest) in the console; the cooldown is over.
    stopped.fake.set_extra_disk(ID, 50);
    stopped.write("UPDATE changes SET finished_at = '2000-01-01T00:00:00Z'");
    let app = stopped
        .restart(Spawn {
            rules: Some(rules("\n[limits]\nmax_monthly_price = 10\n")),
            ..Spawn::default()
        })
        .await;
    assert_eq!(app.alarm(DISK_10).await.status(), 202);
    let top = app
        .wait_for("top of the disk sizes", WITHIN, |i| {
            i["last_decision"]["reason"] == "top_of_ladder"
        })
        .await;
    assert!(
        top["last_decision"]["detail"]
            .as_str()
            .unwrap()
            .contains("50 GB"),
        "{top:#}"
    );
    assert_eq!(top["disk"], 50, "read fresh from the nodes: {top:#}");
    assert_eq!(
        disk_puts(&app).len(),
        1,
        "only the first growth was ever sent"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freeze_holds_a_disk_change_and_a_dry_run_sends_none() {
    let freeze = "\n[[freeze]]\nfrom = \"2026-01-01T00:00:00Z\"\nto = \"2099-01-01T00:00:00Z\"\n";
    let app = spawn_app(Spawn {
        rules: Some(rules(freeze)),
        ..Spawn::default()
    })
    .await;
    assert_eq!(app.alarm(DISK_10).await.status(), 202);
    let frozen = app
        .wait_for("the freeze", WITHIN, |i| {
            i["last_decision"]["reason"] == "frozen"
        })
        .await;
    assert_eq!(frozen["last_decision"]["rule"], "disk-low");
    app.stop().await;

    let app = spawn_app(Spawn {
        rules: Some(rules("")),
        live: false,
        ..Spawn::default()
    })
    .await;
    assert_eq!(app.alarm(DISK_10).await.status(), 202);
    let dry = app
        .wait_for("the pretend change", WITHIN, |i| {
            i["last_change"]["result"] == "completed"
        })
        .await;
    assert_eq!(dry["last_change"]["kind"], "disk");
    assert_eq!(dry["last_change"]["dry_run"], true);
    assert_eq!(dry["last_decision"]["decision"], "would_change_disk");
    assert!(disk_puts(&app).is_empty());
    assert!(app.fake.disk_resizes().is_empty());
    app.stop().await;
}

/// Three nodes grow one by one: the change stays in flight until every node has the new
/// size. A disk alarm during a plan change waits (`change_in_flight`): single flight both
/// ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_grows_before_the_change_is_over_and_a_plan_change_holds_a_disk_alarm() {
    let app = spawn_app(Spawn {
        rules: Some(rules("").replace(
            r#"single = ["bunny-1", "hare-1", "rabbit-1"]"#,
            r#"single = ["hare-3", "rabbit-3"]"#,
        )),
        instances: vec![SeedInstance::new(ID, "prod", "hare-3")],
        timeline: Timeline {
            lag: Duration::from_millis(100),
            reconfigure: Duration::from_millis(1500),
            stuck: false,
        },
        ..Spawn::default()
    })
    .await;
    assert_eq!(app.alarm(DISK_10).await.status(), 202);
    let mut saw_mixed = false;
    loop {
        let sizes = app.fake.disk_sizes(ID).unwrap();
        assert_eq!(sizes.len(), 3);
        let instance = app.instance().await;
        if instance["last_change"]["result"] == "completed" {
            assert_eq!(
                app.fake.disk_sizes(ID).unwrap(),
                [25, 25, 25],
                "over only once every node has grown: {instance:#}"
            );
            break;
        }
        if sizes.contains(&25) && sizes.contains(&0) {
            saw_mixed = true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(saw_mixed, "the nodes grew one by one");

    // The other way round: a plan change in flight holds a disk alarm back.
    assert_eq!(app.alarm(MEMORY_85).await.status(), 202);
    app.wait_for("the plan change in flight", WITHIN, |i| {
        i["change"]["kind"] == "plan"
    })
    .await;
    app.fake.set_extra_disk(ID, 0);
    assert_eq!(app.alarm(DISK_10).await.status(), 202);
    let held = app
        .wait_for("the disk alarm decided", WITHIN, |i| {
            i["last_decision"]["reason"] == "change_in_flight"
        })
        .await;
    assert_eq!(held["change"]["kind"], "plan", "{held:#}");
    app.wait_for("the plan change to complete", WITHIN, |i| {
        i["change"].is_null() && i["last_change"]["kind"] == "plan"
    })
    .await;
    assert_eq!(disk_puts(&app).len(), 1, "the held disk alarm sent nothing");
    app.stop().await;
}

/// A disk rule that picks other instances leaves this one's disk unread, and its plan
/// cooldown is still decided from memory: a reminder during it costs no API call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_rule_for_other_instances_costs_this_one_no_call_in_its_cooldown() {
    let text = rules("")
        .replace(
            "disk_sizes = [25, 50]",
            "disk_sizes = [25, 50]\ninstances = [\"other-*\"]",
        )
        .replace(
            "[[rules]]\nname = \"memory-high\"",
            "[[rules]]\nname = \"disk-plan\"\nalarm = \"disk\"\nbelow = 15\nladder = \"single\"\n\n[[rules]]\nname = \"memory-high\"",
        );
    let app = spawn_app(Spawn {
        rules: Some(text),
        ..Spawn::default()
    })
    .await;
    assert_eq!(app.alarm(DISK_10).await.status(), 202);
    let up = app
        .wait_for("the plan change", WITHIN, |i| {
            i["last_change"]["result"] == "completed"
        })
        .await;
    assert_eq!(up["last_change"]["kind"], "plan", "{up:#}");
    assert!(disk_puts(&app).is_empty());
    let calls = app.fake.requests().len();
    assert_eq!(app.alarm(DISK_10).await.status(), 202);
    let cooling = app
        .wait_for("the cooldown", WITHIN, |i| {
            i["last_decision"]["reason"] == "cooldown"
        })
        .await;
    assert_eq!(cooling["last_decision"]["rule"], "disk-plan");
    assert_eq!(app.fake.requests().len(), calls, "decided from memory");
    app.stop().await;
}
