//! Restarts on the same state: changes in flight are followed again, never sent again;
//! alarms accepted but not decided are decided.

use std::time::Duration;

use cloudamqp_autoscaler::fake::{Fault, FaultRule, PathMatch, Timeline};

use crate::support::{ID, MEMORY_85, Spawn, Stopped, TestApp, spawn_app, until};

const WITHIN: Duration = Duration::from_secs(20);

fn slow_change() -> Timeline {
    Timeline {
        lag: Duration::from_millis(300),
        reconfigure: Duration::from_secs(3),
        stuck: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_during_tracking_resumes_it_without_a_second_put() {
    let app = spawn_app(Spawn {
        timeline: slow_change(),
        ..Spawn::default()
    })
    .await;
    app.alarm(MEMORY_85).await;
    app.wait_for("tracking", WITHIN, |i| i["change"]["phase"] == "tracking")
        .await;
    let stopped = app.stop().await;
    assert_eq!(
        super::support::query(&stopped.state_dir, "SELECT phase FROM changes"),
        vec![vec![serde_json::Value::from("submitted")]]
    );

    let app = stopped
        .restart(Spawn {
            timeline: slow_change(),
            ..Spawn::default()
        })
        .await;
    let instance = app.instance().await;
    assert_eq!(
        instance["change"]["to"], "hare-1",
        "the change in flight is known at once: {instance}"
    );
    // A reminder while it is followed again is not a reason to send it again.
    app.alarm(MEMORY_85).await;
    let instance = app.wait_for_result(WITHIN).await;
    assert_eq!(instance["last_change"]["result"], "completed");
    assert_eq!(app.fake.put_attempts(), 1);
    assert_eq!(app.fake.instance(ID).unwrap().plan, "hare-1");
    app.stop().await;
}

/// The plan a completed change reached is the instance's plan after a restart: `/status`
/// shows it, and rules and cooldowns are judged on it until the instance is read again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_change_is_the_instances_plan_after_a_restart() {
    let app = spawn_app(Spawn::default()).await;
    app.alarm(MEMORY_85).await;
    let instance = app.wait_for_result(WITHIN).await;
    assert_eq!(instance["last_change"]["result"], "completed");
    assert_eq!(instance["plan"], "hare-1", "{instance}");
    let stopped = app.stop().await;

    let app = stopped.restart(Spawn::default()).await;
    let instance = app.instance().await;
    assert_eq!(instance["plan"], "hare-1", "{instance}");
    assert_eq!(
        app.query("SELECT plan FROM instances"),
        vec![vec![serde_json::Value::from("hare-1")]]
    );
    app.stop().await;
}

/// A dry-run change that a stop left open (between recording it and marking it done) is
/// closed as the dry run it was at the next start: nothing to follow, nothing sent, no human
/// needed, and its cooldown counted from when it was decided.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_change_left_open_is_closed_as_a_dry_run_at_the_next_start() {
    let dry_run = || Spawn {
        live: false,
        ..Spawn::default()
    };
    let stopped = spawn_app(dry_run()).await.stop().await;
    stopped.write(&format!(
        "INSERT INTO alarms (received_at, kind, value, resolved, body, decided_at, instance_id, \
             plan, decision, rule, from_plan, to_plan, detail) \
         VALUES ('2026-11-26T17:00:00Z', 'memory', 85, 0, '{{}}', '2026-11-26T17:00:00Z', {ID}, \
             'bunny-1', 'would_change', 'memory-high', 'bunny-1', 'hare-1', 'would change'); \
         INSERT INTO changes (instance_id, alarm_id, from_plan, to_plan, rule, cooldown_seconds, \
             dry_run, phase, intended_at) \
         VALUES ({ID}, last_insert_rowid(), 'bunny-1', 'hare-1', 'memory-high', 1800, 1, \
             'intended', '2026-11-26T17:00:00Z');"
    ));

    let app = stopped.restart(dry_run()).await;
    let instance = app.instance().await;
    assert!(instance["change"].is_null(), "not in flight: {instance}");
    assert_eq!(instance["last_change"]["dry_run"], true, "{instance}");
    assert_eq!(
        instance["last_change"]["needs_attention"], false,
        "{instance}"
    );
    assert_eq!(
        instance["last_change"]["finished_at"], "2026-11-26T17:00:00Z",
        "{instance}"
    );
    until("the change closed", || {
        app.query("SELECT count(*) FROM changes WHERE phase = 'completed' AND NOT needs_attention")
            == [[1]]
    })
    .await;
    assert_eq!(app.fake.put_attempts(), 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_before_the_answer_was_recorded_follows_the_change_it_finds() {
    let app = spawn_app(Spawn {
        timeline: slow_change(),
        ..Spawn::default()
    })
    .await;
    // CloudAMQP takes the PUT but answers slowly: the daemon stops before the answer.
    app.fake.inject(FaultRule {
        method: Some("PUT".into()),
        path: PathMatch::Any,
        fault: Fault::Slow(Duration::from_secs(3)),
        times: 1,
    });
    app.alarm(MEMORY_85).await;
    app.wait_for("the intent", WITHIN, |i| i["change"]["phase"] == "intended")
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopped = app.stop().await;
    assert_eq!(
        super::support::query(&stopped.state_dir, "SELECT phase FROM changes"),
        vec![vec![serde_json::Value::from("intended")]]
    );
    let app = stopped
        .restart(Spawn {
            timeline: slow_change(),
            ..Spawn::default()
        })
        .await;
    let instance = app.wait_for_result(WITHIN).await;
    assert_eq!(instance["last_change"]["result"], "completed");
    assert_eq!(
        app.fake.put_attempts(),
        1,
        "an intended change is never sent again"
    );
    app.stop().await;
}

/// An alarm found undecided at a start but accepted long before it (a crash and a long
/// outage) is not acted on: it is skipped as `stale`, and nothing is sent. (Recent ones are
/// decided as usual: the test below.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_accepted_long_before_the_restart_is_skipped_as_stale() {
    let stopped = spawn_app(Spawn::default()).await.stop().await;
    stopped.write(&format!(
        "INSERT INTO alarms (received_at, kind, value, instance, resolved, body) \
         VALUES ('2026-11-20T08:30:00Z', 'memory', 85, '{ID}', 0, '{}')",
        MEMORY_85.replace('\'', "''")
    ));

    let app = stopped.restart(Spawn::default()).await;
    until("the old alarm decided", || {
        app.query("SELECT count(*) FROM alarms WHERE decided_at IS NULL")[0][0] == 0
    })
    .await;
    assert_eq!(
        app.query("SELECT decision, reason FROM decisions"),
        vec![vec![
            serde_json::Value::from("skip"),
            serde_json::Value::from("stale")
        ]]
    );
    assert_eq!(app.fake.put_attempts(), 0);
    assert_eq!(app.query("SELECT count(*) FROM changes")[0][0], 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_accepted_but_not_decided_are_decided_after_a_restart() {
    let app = spawn_app(Spawn {
        max_concurrent: 1,
        live: false,
        ..Spawn::default()
    })
    .await;
    // The first decision waits on a slow read; the others wait behind it.
    app.fake.inject(FaultRule {
        method: Some("GET".into()),
        path: PathMatch::Any,
        fault: Fault::Slow(Duration::from_secs(5)),
        times: 1,
    });
    for value in [85, 86, 87, 88] {
        let body = format!(r#"{{"alarm_type":"memory","value":{value},"instance_id":359559}}"#);
        assert_eq!(app.alarm(&body).await.status(), 202);
    }
    let stopped = app.stop().await;
    let pending = super::support::query(
        &stopped.state_dir,
        "SELECT count(*) FROM alarms WHERE decided_at IS NULL",
    );
    assert!(pending[0][0].as_i64().unwrap() >= 3, "{pending:?}");

    let app = stopped
        .restart(Spawn {
            live: false,
            ..Spawn::default()
        })
        .await;
    app.wait_for("every alarm decided", WITHIN, |_| {
        app.query("SELECT count(*) FROM alarms WHERE decided_at IS NULL")[0][0] == 0
    })
    .await;
    assert_eq!(app.query("SELECT count(*) FROM decisions")[0][0], 4);
    assert_eq!(
        app.query("SELECT count(*) FROM changes")[0][0],
        1,
        "one spike, one (dry-run) change"
    );
    app.stop().await;
}

/// A stop (SIGTERM) while CloudAMQP refuses the PUT outright (503, retried) leaves the
/// change marked as not sent, and the next start sends it, as the stop interrupted it:
/// the spike gets its change, CloudAMQP accepts exactly one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_while_the_put_is_refused_sends_it_at_the_next_start() {
    let stopped = stopped_during_the_put(Fault::ServiceUnavailable, 1_000, true).await;

    stopped.fake.clear_faults();
    let app = stopped.restart(Spawn::default()).await;
    let instance = app.wait_for_result(WITHIN).await;
    assert_eq!(instance["last_change"]["result"], "completed", "{instance}");
    assert_eq!(app.fake.plan_changes(), vec![(ID, "hare-1".to_owned())]);
    let puts: Vec<u16> = app.puts().iter().map(|r| r.status).collect();
    assert_eq!(puts.last(), Some(&200), "{puts:?}");
    assert!(puts[..puts.len() - 1].iter().all(|s| *s == 503), "{puts:?}");
    assert_eq!(
        app.query("SELECT phase, unsent FROM changes"),
        vec![vec![serde_json::Value::from("completed"), 0.into()]]
    );
    app.stop().await;
}

/// A stop while a PUT is out and unanswered (CloudAMQP applies it, the answer is slow)
/// leaves the change only watched: the next start finds it applied and follows it, and
/// never sends it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_while_the_put_is_unanswered_only_watches_at_the_next_start() {
    let stopped = stopped_during_the_put(Fault::Slow(Duration::from_secs(3)), 1, false).await;

    let app = stopped.restart(Spawn::default()).await;
    let instance = app.wait_for_result(WITHIN).await;
    assert_eq!(instance["last_change"]["result"], "completed", "{instance}");
    assert_eq!(app.fake.put_attempts(), 1, "never sent again");
    app.stop().await;
}

/// A change a stop left unsent is not sent after a long outage: more than an hour after it
/// was decided it answers no load that is still there. It ends `failed`, for a human.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsent_change_found_long_after_the_stop_is_not_sent() {
    let stopped = stopped_during_the_put(Fault::Locked, 1_000, true).await;
    let two_hours_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(2);
    stopped.write(&format!(
        "UPDATE changes SET intended_at = '{two_hours_ago:.9}' WHERE unsent = 1"
    ));
    let app = restarted_without_sending(stopped, Spawn::default(), "more than 1h ago").await;
    assert!(app.fake.plan_changes().is_empty());
    app.stop().await;
}

/// Restarts `stopped`, its faults cleared, as `spawn` says; the change a stop left unsent
/// must end `failed` for a human, with no PUT more, its detail saying `why`.
async fn restarted_without_sending(stopped: Stopped, spawn: Spawn, why: &str) -> TestApp {
    stopped.fake.clear_faults();
    let attempts = stopped.fake.put_attempts();
    let app = stopped.restart(spawn).await;
    let instance = app.wait_for_result(WITHIN).await;
    assert_eq!(instance["last_change"]["result"], "failed", "{instance}");
    assert_eq!(
        instance["last_change"]["needs_attention"], true,
        "{instance}"
    );
    assert_eq!(app.fake.put_attempts(), attempts, "not sent");
    let detail = app.query("SELECT detail FROM changes")[0][0].clone();
    assert!(detail.as_str().unwrap().contains(why), "{detail}");
    app
}

/// Sends the spike with every PUT meeting `fault` (`times` of them), stops the daemon once
/// CloudAMQP has the first (and, for a refusal, once the daemon has read it), and checks
/// how the stop left the change: `intended`, marked `unsent` or not.
async fn stopped_during_the_put(fault: Fault, times: usize, unsent: bool) -> Stopped {
    let app = spawn_app(Spawn::default()).await;
    app.fake.inject(
        FaultRule::once(fault)
            .method("PUT")
            .path(PathMatch::Exact(format!("/api/instances/{ID}")))
            .times(times),
    );
    app.alarm(MEMORY_85).await;
    until("the PUT", || app.fake.put_attempts() >= 1).await;
    if unsent {
        // An attempt out, or a refusal not read yet, may still reach CloudAMQP: the stop
        // comes after the daemon counted the answer, well before the next attempt (1 s on).
        let refused = r#"autoscaler_api_calls_total{call="change_plan",status=""#;
        let started = std::time::Instant::now();
        while !app.metrics().await.contains(refused) {
            assert!(
                started.elapsed() < WITHIN,
                "the daemon never read the refusal"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stopped = app.stop().await;
    assert_eq!(
        super::support::query(&stopped.state_dir, "SELECT phase, unsent FROM changes"),
        vec![vec![
            serde_json::Value::from("intended"),
            i64::from(unsent).into()
        ]]
    );
    stopped
}

/// A stop while the PUT waits for its turn under the client's rate limit (1 call/s here):
/// nothing was sent, so the change is marked unsent and the next start sends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_before_the_put_left_sends_it_at_the_next_start() {
    // The intent is watched in the state file; the PUT may slip out before the stop (a
    // loaded machine); then the scenario is run again (at most 5 times).
    for _ in 0..5 {
        let app =
            spawn_app(Spawn::default().env("AUTOSCALER__CLOUDAMQP__REQUESTS_PER_SECOND", "1"))
                .await;
        app.alarm(MEMORY_85).await;
        until("the intent or the PUT", || {
            app.fake.put_attempts() > 0
                || app.query("SELECT phase FROM changes") == [[serde_json::Value::from("intended")]]
        })
        .await;
        let stopped = app.stop().await;
        // Run again too when the stop came just as the limiter let the PUT out (it may have
        // been on its way, so it is rightly not marked); a daemon that never marks it fails
        // all five runs.
        let row = super::support::query(&stopped.state_dir, "SELECT phase, unsent FROM changes");
        if stopped.fake.put_attempts() > 0
            || row != [[serde_json::Value::from("intended"), 1.into()]]
        {
            eprintln!("the PUT was out at the stop ({row:?}); again");
            continue;
        }
        let app = stopped.restart(Spawn::default()).await;
        let instance = app.wait_for_result(WITHIN).await;
        assert_eq!(instance["last_change"]["result"], "completed", "{instance}");
        assert_eq!(app.fake.put_attempts(), 1);
        app.stop().await;
        return;
    }
    panic!("no stop in 5 left the change intended and marked unsent before the PUT left");
}

/// Stopped while the PUT was being refused, started again as a dry run (how an operator
/// stops it acting): the change is not sent; it ends `failed`, for a human.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsent_change_is_not_sent_by_a_dry_run() {
    let stopped = stopped_during_the_put(Fault::ServiceUnavailable, 1_000, true).await;
    let dry_run = Spawn {
        live: false,
        ..Spawn::default()
    };
    restarted_without_sending(stopped, dry_run, "dry run")
        .await
        .stop()
        .await;
}

/// Stopped while the PUT was rate limited (429, retry in 10 s: refused outright, so marked
/// unsent); meanwhile the operator took the rule that decided it out of the rules. The next
/// start does not send a change no rule in force asks for; it ends `failed`, for a human.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsent_change_is_not_sent_under_a_rule_no_longer_in_force() {
    let stopped = stopped_during_the_put(
        Fault::TooManyRequests {
            retry_after: Some(10),
        },
        1_000,
        true,
    )
    .await;
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules.toml"),
    )
    .unwrap();
    let renamed = shipped.replace(r#"name = "memory-high""#, r#"name = "memory-high-v2""#);
    assert_ne!(renamed, shipped);
    let spawn = Spawn {
        rules: Some(renamed),
        ..Spawn::default()
    };
    let why = r#"rule "memory-high" is no longer in the rules in force"#;
    let app = restarted_without_sending(stopped, spawn, why).await;
    assert!(app.fake.plan_changes().is_empty());
    app.stop().await;
}

/// Stopped while the PUT was locked out (423); meanwhile someone moved the instance to
/// another plan. The next start reads the instance before sending and does not send onto
/// a plan the change was not decided on (that could be a move down during a spike).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsent_change_is_not_sent_onto_an_instance_changed_meanwhile() {
    let stopped = stopped_during_the_put(Fault::Locked, 1_000, true).await;
    assert!(stopped.fake.set_plan(ID, "rabbit-1"));
    let why = "someone else changed it";
    let app = restarted_without_sending(stopped, Spawn::default(), why).await;
    assert_eq!(app.fake.instance(ID).unwrap().plan, "rabbit-1");
    assert_eq!(
        app.query("SELECT unsent FROM changes"),
        vec![vec![serde_json::Value::from(0)]],
        "the mark is cleared before the instance is read"
    );
    app.stop().await;
}
