//! `kill -9` at each step of a plan change, with the built binary, then a restart on the same
//! state directory. Black-box: the moment of the kill is chosen from outside (a slow answer
//! of the fake CloudAMQP, the client-side rate limit, `/status`), never by a failpoint.
//!
//! | step | how the daemon is caught there |
//! |---|---|
//! | (a) alarm recorded, not decided | the fake's first read of the instance is slow |
//! | (b) intent recorded, PUT not sent | one API request per second: the PUT waits for the limiter; the intent is seen in the state file |
//! | (c) PUT sent, answer not recorded | the fake applies the PUT, then answers slowly |
//! | (d) change being tracked | a change that takes seconds; `/status` says `tracking` |
//!
//! After each restart: at most one PUT for the spike, the change followed to its end, the
//! cooldown held (a reminder is `cooldown`, no new PUT), and, read from the SQLite file once
//! the daemon has stopped, every alarm that got a 202 has exactly one decision.

#[path = "state_query/mod.rs"]
mod state_query;
#[path = "process_support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cloudamqp_autoscaler::fake::{FakeCloudAmqp, Fault, FaultRule, PathMatch, Timeline};
use serde_json::Value;
use support::{Daemon, ID, MEMORY_85, TOKEN, fake, query, workdir};

/// A change that takes a few seconds, with the lag production shows before the new plan.
fn slow_change() -> Timeline {
    Timeline {
        lag: Duration::from_millis(300),
        reconfigure: Duration::from_secs(3),
        stuck: false,
    }
}

fn instance_path() -> String {
    format!("/api/instances/{ID}")
}

fn instance(status: &Value) -> &Value {
    &status["instances"][ID.to_string()]
}

/// Alarms the daemon acknowledged with a 202, by id.
#[derive(Default)]
struct Accepted(Vec<i64>);

impl Accepted {
    async fn post(&mut self, daemon: &Daemon, body: &str) {
        let (status, id) = daemon.post_alarm(body).await;
        assert_eq!(status, 202, "{}", daemon.log());
        self.0.push(id.expect("a 202 names the alarm"));
    }
}

/// Polls `done` (at most `within`), without touching the daemon.
async fn until(what: &str, within: Duration, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < within, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The phase of every change row, oldest first.
fn change_phases(dir: &std::path::Path) -> Vec<Value> {
    query(dir, "SELECT phase FROM changes ORDER BY id")
        .into_iter()
        .map(|mut row| row.remove(0))
        .collect()
}

/// Waits for the restarted daemon to finish the spike's change and checks it was the only
/// PUT: the instance is on hare-1, CloudAMQP saw one PUT and one plan change. The status.
async fn completed_with_one_put(daemon: &Daemon, fake: &FakeCloudAmqp) -> Value {
    let status = daemon
        .wait_for("the change to complete", |s| {
            instance(s)["last_change"]["result"] == "completed"
        })
        .await;
    assert_eq!(instance(&status)["plan"], "hare-1");
    assert_eq!(fake.put_attempts(), 1, "never sent again: {}", daemon.log());
    assert_eq!(fake.plan_changes(), vec![(ID, "hare-1".to_owned())]);
    status
}

/// The end every scenario shares, on the restarted daemon: a reminder meets the cooldown
/// and sends nothing; a graceful stop; then, in the store, every acknowledged alarm has
/// exactly one decision and no alarm is left undecided.
async fn reminder_cools_down_then_every_alarm_has_one_decision(
    mut daemon: Daemon,
    accepted: &mut Accepted,
    fake: &FakeCloudAmqp,
    dir: &std::path::Path,
) {
    let puts = fake.put_attempts();
    accepted.post(&daemon, MEMORY_85).await;
    let reminder = *accepted.0.last().unwrap();
    let sql = format!("SELECT reason FROM decisions WHERE alarm_id = {reminder}");
    until("the reminder's decision", support::WITHIN, || {
        !query(dir, &sql).is_empty()
    })
    .await;
    assert_eq!(query(dir, &sql), [[Value::from("cooldown")]]);
    let status = daemon.status().await;
    assert!(
        instance(&status)["cooldown_until"].is_string(),
        "{status:#}"
    );
    assert_eq!(fake.put_attempts(), puts, "a reminder sends nothing");

    daemon.signal("TERM");
    assert_eq!(daemon.wait(), Some(0), "{}", daemon.log());
    daemon.assert_no_secrets();

    let decisions: BTreeMap<i64, i64> = query(
        dir,
        "SELECT a.id, (SELECT count(*) FROM decisions d WHERE d.alarm_id = a.id) FROM alarms a",
    )
    .into_iter()
    .map(|row| (row[0].as_i64().unwrap(), row[1].as_i64().unwrap()))
    .collect();
    let expected: BTreeMap<i64, i64> = accepted.0.iter().map(|id| (*id, 1)).collect();
    assert_eq!(
        decisions, expected,
        "every alarm that got a 202 (and only those) is recorded, with exactly one decision"
    );
    assert_eq!(
        query(dir, "SELECT count(*) FROM alarms WHERE decided_at IS NULL")[0][0],
        0
    );
    assert_eq!(
        query(
            dir,
            "SELECT count(*) FROM decisions WHERE decision = 'change'"
        )[0][0],
        1,
        "one spike, one decision to change; the others are skips"
    );
}

/// (a) The alarm is on disk (202) but the daemon dies while it reads the instance to decide:
/// the restart decides it (and the reminders queued behind it), one PUT, change completed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_after_the_alarm_is_recorded_and_before_the_decision_loses_no_alarm() {
    let (fake, running) = fake(slow_change()).await;
    let dir = workdir();
    let url = running.base_url();
    fake.inject(
        FaultRule::once(Fault::Slow(Duration::from_secs(3)))
            .method("GET")
            .path(PathMatch::Exact(instance_path())),
    );
    let mut daemon = Daemon::start(dir.path(), &url, true);
    let mut accepted = Accepted::default();
    accepted.post(&daemon, MEMORY_85).await;
    until("the read of the instance", Duration::from_secs(10), || {
        fake.requests().iter().any(|r| r.path == instance_path())
    })
    .await;
    // Reminders queue behind the first decision (one decision at a time per instance).
    for _ in 0..4 {
        accepted.post(&daemon, MEMORY_85).await;
    }
    daemon.signal("KILL");
    assert_eq!(daemon.wait(), None, "killed by a signal");
    assert_eq!(fake.put_attempts(), 0);
    assert_eq!(
        query(
            dir.path(),
            "SELECT count(*) FROM alarms WHERE decided_at IS NULL"
        )[0][0],
        5,
        "killed between recording and deciding"
    );
    assert!(change_phases(dir.path()).is_empty());

    let daemon = Daemon::start(dir.path(), &url, true);
    completed_with_one_put(&daemon, &fake).await;
    reminder_cools_down_then_every_alarm_has_one_decision(daemon, &mut accepted, &fake, dir.path())
        .await;
    assert_eq!(change_phases(dir.path()), ["completed"]);
}

/// (b) The intent is on disk, the PUT has not left: the restart never sends it; it watches
/// the instance for `unconfirmed_grace` (ten poll intervals), sees nothing, and records the
/// change `failed` with `needs_attention`. No PUT at all; the cooldown holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_after_the_intent_and_before_the_put_never_sends_it() {
    // The window is about a second wide: the PUT waits for the rate limiter behind the
    // catalogue read. It is watched in the state file and at the fake, not through the
    // daemon's `/status`, so that a busy daemon cannot hide it; should the test still miss
    // it (a loaded machine) or the PUT slip out before the kill lands, the run is repeated.
    for attempt in 1..=5 {
        let (fake, running) = fake(Timeline::instant()).await;
        let dir = workdir();
        let url = running.base_url();
        let mut daemon = Daemon::start_with(
            dir.path(),
            &url,
            true,
            &[("AUTOSCALER__CLOUDAMQP__REQUESTS_PER_SECOND", "1")],
        );
        let mut accepted = Accepted::default();
        accepted.post(&daemon, MEMORY_85).await;
        let started = Instant::now();
        let caught = loop {
            let intended = change_phases(dir.path()) == ["intended"];
            if fake.put_attempts() != 0 {
                break false;
            }
            if intended {
                daemon.signal("KILL");
                break true;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no intent: {}",
                daemon.log()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        if !caught {
            eprintln!("attempt {attempt}: the PUT left before the intent was seen; again");
            continue;
        }
        assert_eq!(daemon.wait(), None, "killed by a signal");
        // Whatever was on its way has arrived by now.
        tokio::time::sleep(Duration::from_millis(500)).await;
        if fake.put_attempts() != 0 {
            eprintln!("attempt {attempt}: the PUT left before the kill landed; again");
            continue;
        }
        assert_eq!(change_phases(dir.path()), ["intended"]);

        let daemon = Daemon::start(dir.path(), &url, true);
        let status = daemon
            .wait_for("the unconfirmed change to be given up", |s| {
                !instance(s)["last_change"].is_null() && instance(s)["change"].is_null()
            })
            .await;
        let last = &instance(&status)["last_change"];
        assert_eq!(last["result"], "failed", "{status:#}");
        assert_eq!(last["needs_attention"], true);
        assert_eq!(
            fake.put_attempts(),
            0,
            "an intended change is never sent after a restart"
        );
        assert_eq!(fake.instance(ID).unwrap().plan, "bunny-1");
        reminder_cools_down_then_every_alarm_has_one_decision(
            daemon,
            &mut accepted,
            &fake,
            dir.path(),
        )
        .await;
        assert_eq!(change_phases(dir.path()), ["failed"]);
        let detail = query(dir.path(), "SELECT detail, needs_attention FROM changes");
        assert!(
            detail[0][0].as_str().unwrap().contains("not sent again"),
            "{detail:?}"
        );
        assert_eq!(detail[0][1], 1);
        return;
    }
    panic!("the kill never landed between the intent and the PUT in 5 attempts");
}

/// (c) The PUT reached CloudAMQP (which applied it) but its answer never got recorded: the
/// restart finds the change on the instance and follows it; still exactly one PUT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_after_the_put_and_before_its_answer_is_recorded_follows_the_change() {
    let (fake, running) = fake(slow_change()).await;
    let dir = workdir();
    let url = running.base_url();
    fake.inject(FaultRule::once(Fault::Slow(Duration::from_secs(3))).method("PUT"));
    let mut daemon = Daemon::start(dir.path(), &url, true);
    let mut accepted = Accepted::default();
    accepted.post(&daemon, MEMORY_85).await;
    until("the PUT", Duration::from_secs(10), || {
        fake.put_attempts() == 1
    })
    .await;
    let status = daemon.status().await;
    assert_eq!(
        instance(&status)["change"]["phase"],
        "intended",
        "the answer is still on its way: {status:#}"
    );
    daemon.signal("KILL");
    assert_eq!(daemon.wait(), None, "killed by a signal");
    assert_eq!(change_phases(dir.path()), ["intended"]);
    assert_eq!(fake.plan_changes(), vec![(ID, "hare-1".to_owned())]);

    let daemon = Daemon::start(dir.path(), &url, true);
    let status = completed_with_one_put(&daemon, &fake).await;
    assert_eq!(instance(&status)["last_change"]["needs_attention"], false);
    reminder_cools_down_then_every_alarm_has_one_decision(daemon, &mut accepted, &fake, dir.path())
        .await;
    assert_eq!(change_phases(dir.path()), ["completed"]);
}

/// (d) CloudAMQP accepted the change and the daemon recorded it; it dies while polling. The
/// restart follows the change again (a reminder meanwhile is `change_in_flight`), one PUT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_while_tracking_resumes_tracking_without_a_second_put() {
    let (fake, running) = fake(slow_change()).await;
    let dir = workdir();
    let url = running.base_url();
    let mut daemon = Daemon::start(dir.path(), &url, true);
    let mut accepted = Accepted::default();
    accepted.post(&daemon, MEMORY_85).await;
    daemon
        .wait_for("tracking", |s| instance(s)["change"]["phase"] == "tracking")
        .await;
    daemon.signal("KILL");
    assert_eq!(daemon.wait(), None, "killed by a signal");
    assert_eq!(change_phases(dir.path()), ["submitted"]);

    let daemon = Daemon::start(dir.path(), &url, true);
    let status = daemon.status().await;
    assert_eq!(
        instance(&status)["change"]["phase"],
        "tracking",
        "the change in flight is known at once: {status:#}"
    );
    // A reminder while it is followed again is no reason to send it again.
    accepted.post(&daemon, MEMORY_85).await;
    completed_with_one_put(&daemon, &fake).await;
    // A wrong token is logged as such, never echoed.
    let wrong = reqwest::Client::new()
        .post(format!("{}/cloudamqp/alarm?token=not-{TOKEN}", daemon.base))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    reminder_cools_down_then_every_alarm_has_one_decision(daemon, &mut accepted, &fake, dir.path())
        .await;
    assert_eq!(change_phases(dir.path()), ["completed"]);
}

/// The rules of `workdir` with a quick `[scale_down]`.
fn with_scale_down(dir: &std::path::Path) {
    let path = dir.join("rules.toml");
    let mut rules = std::fs::read_to_string(&path).unwrap();
    rules.push_str(
        "\n[scale_down]\nquiet_for = \"300ms\"\nafter_up = \"100ms\"\nafter_down = \"1h\"\n\
         check_every = \"100ms\"\nwindow = \"200ms\"\n",
    );
    std::fs::write(path, rules).unwrap();
}

/// A step down is a change like any other: `kill -9` (or SIGTERM) while it is tracked, and
/// the next start follows it to its end without sending it again, and makes no other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_down_stopped_while_tracked_is_followed_after_the_restart_never_sent_again() {
    for graceful in [false, true] {
        let (fake, running) = support::fake(slow_change()).await;
        let dir = workdir();
        with_scale_down(dir.path());
        let mut daemon = Daemon::start(dir.path(), &running.base_url(), true);
        assert_eq!(daemon.alarm(MEMORY_85).await, 202);
        daemon
            .wait_for("the step down, tracking", |s| {
                let change = &instance(s)["change"];
                change["direction"] == "down" && change["phase"] == "tracking"
            })
            .await;
        if graceful {
            daemon.signal("TERM");
            assert_eq!(daemon.wait(), Some(0), "{}", daemon.log());
        } else {
            daemon.child.kill().unwrap();
            assert_eq!(daemon.wait(), None);
        }
        let daemon = Daemon::start(dir.path(), &running.base_url(), true);
        let status = daemon
            .wait_for("the step down to complete", |s| {
                let last = &instance(s)["last_change"];
                last["direction"] == "down" && last["result"] == "completed"
            })
            .await;
        assert_eq!(instance(&status)["plan"], "bunny-1");
        assert_eq!(
            fake.plan_changes(),
            vec![(ID, "hare-1".to_owned()), (ID, "bunny-1".to_owned())],
            "graceful: {graceful}; {}",
            daemon.log()
        );
        assert_eq!(fake.put_attempts(), 2);
        assert!(
            instance(&status)["scale_down"].is_null(),
            "at the floor: {status:#}"
        );
        daemon.assert_no_secrets();
        drop(daemon);
        running.stop().await;
    }
}

/// The rules of `workdir` with a disk rule.
fn with_disk_rule(dir: &std::path::Path) {
    let path = dir.join("rules.toml");
    let mut rules = std::fs::read_to_string(&path).unwrap();
    rules.push_str(
        "\n[[rules]]\nname = \"disk-low\"\nalarm = \"disk\"\nbelow = 15\n\
         disk_sizes = [25, 50]\ncooldown = \"6h\"\n",
    );
    std::fs::write(path, rules).unwrap();
}

/// A disk resize is a change like a plan change: `kill -9` after its PUT reached CloudAMQP
/// (answer not recorded), or while it is tracked, and the next start follows it until every
/// node has the new size, without sending it again; a reminder then meets the disk rule's
/// cooldown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_a_disk_resize_is_followed_after_the_restart_never_sent_again() {
    const DISK_10: &str = r#"{"alarm_type":"disk","value":10,"instance_id":359559}"#;
    for answered in [false, true] {
        let (fake, running) = fake(slow_change()).await;
        let dir = workdir();
        with_disk_rule(dir.path());
        let url = running.base_url();
        if !answered {
            fake.inject(FaultRule::once(Fault::Slow(Duration::from_secs(3))).method("PUT"));
        }
        let mut daemon = Daemon::start(dir.path(), &url, true);
        let mut accepted = Accepted::default();
        accepted.post(&daemon, DISK_10).await;
        let phase = if answered { "tracking" } else { "intended" };
        until("the disk PUT", Duration::from_secs(10), || {
            fake.disk_resizes().len() == 1
        })
        .await;
        daemon
            .wait_for(phase, |s| instance(s)["change"]["phase"] == phase)
            .await;
        daemon.signal("KILL");
        assert_eq!(daemon.wait(), None, "killed by a signal");
        let stored = if answered { "submitted" } else { "intended" };
        assert_eq!(change_phases(dir.path()), [stored]);

        let daemon = Daemon::start(dir.path(), &url, true);
        let status = daemon
            .wait_for("the resize to complete", |s| {
                instance(s)["last_change"]["result"] == "completed"
            })
            .await;
        let done = instance(&status);
        assert_eq!(done["last_change"]["kind"], "disk", "{status:#}");
        assert_eq!(done["last_change"]["to"], 25);
        assert_eq!(done["last_change"]["needs_attention"], false);
        assert_eq!(
            fake.disk_resizes(),
            [(ID, 25)],
            "one resize, never sent again"
        );
        assert_eq!(fake.disk_sizes(ID).unwrap(), [25]);
        assert_eq!(fake.put_attempts(), 1);

        accepted.post(&daemon, DISK_10).await;
        let reminder = *accepted.0.last().unwrap();
        let sql = format!("SELECT reason FROM decisions WHERE alarm_id = {reminder}");
        until("the reminder's decision", support::WITHIN, || {
            !query(dir.path(), &sql).is_empty()
        })
        .await;
        assert_eq!(query(dir.path(), &sql), [[Value::from("cooldown")]]);
        assert_eq!(fake.put_attempts(), 1);
        let mut daemon = daemon;
        daemon.signal("TERM");
        assert_eq!(daemon.wait(), Some(0), "{}", daemon.log());
        assert_eq!(change_phases(dir.path()), ["completed"]);
        assert_eq!(
            query(
                dir.path(),
                "SELECT count(*) FROM alarms WHERE decided_at IS NULL"
            )[0][0],
            0
        );
    }
}
