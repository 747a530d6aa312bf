//! The built binary as its own process: real SIGHUP, SIGTERM and SIGINT, `serve --demo`.
//! (tokio's signal handlers are process-wide, so these cannot run inside the test process.)
//! `kill -9` at each step of a plan change, then a restart: `crash_matrix.rs`.

#[path = "state_query/mod.rs"]
mod state_query;
#[path = "process_support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use cloudamqp_autoscaler::fake::{Fault, FaultRule, PathMatch, Timeline};
use support::{Daemon, ID, MEMORY_85, command, fake, query, workdir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_valid_rules_and_refuses_invalid_ones() {
    let (_fake, running) = fake(Timeline::instant()).await;
    let dir = workdir();
    let mut daemon = Daemon::start(dir.path(), &running.base_url(), false);
    let hash = daemon.status().await["rules"]["hash"].clone();

    std::fs::write(dir.path().join("rules.toml"), "[ladders]\ns = [\"bunny-1\", \"panda-1\"]\n[[rules]]\nname = \"m\"\nalarm = \"memory\"\nladder = \"s\"\n").unwrap();
    daemon.signal("HUP");
    let status = daemon
        .wait_for("the reload", |s| s["rules"]["last_reload"]["ok"] == true)
        .await;
    assert_ne!(status["rules"]["hash"], hash);
    let reloaded = status["rules"]["hash"].clone();

    std::fs::write(dir.path().join("rules.toml"), "[[rules]]\nname = 1\n").unwrap();
    // Twice in a row: signals coalesce or run one after the other, both refuse the file.
    daemon.signal("HUP");
    daemon.signal("HUP");
    let status = daemon
        .wait_for("the refusal", |s| s["rules"]["last_reload"]["ok"] == false)
        .await;
    assert_eq!(
        status["rules"]["hash"], reloaded,
        "the valid rules stay in force"
    );
    let errors = status["rules"]["last_reload"]["errors"].as_array().unwrap();
    assert!(
        errors.iter().any(|e| e
            .as_str()
            .unwrap()
            .starts_with("rules.toml:2:8: rule #1: `name` must be a string")),
        "{errors:?}"
    );
    assert_eq!(daemon.alarm(MEMORY_85).await, 202);
    daemon
        .wait_for("a decision", |s| {
            !s["instances"][ID.to_string()]["last_decision"].is_null()
        })
        .await;
    assert_eq!(
        daemon.status().await["instances"][ID.to_string()]["last_change"]["to"],
        "panda-1"
    );

    daemon.signal("TERM");
    assert_eq!(daemon.wait(), Some(0));
    assert!(
        daemon.log().contains("rules reload refused"),
        "{}",
        daemon.log()
    );
    daemon.assert_no_secrets();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_sigint_stop_gracefully_with_exit_0() {
    let (_fake, running) = fake(Timeline::instant()).await;
    for signal in ["TERM", "INT"] {
        let dir = workdir();
        let mut daemon = Daemon::start(dir.path(), &running.base_url(), true);
        assert_eq!(daemon.alarm(MEMORY_85).await, 202);
        daemon.signal(signal);
        assert_eq!(daemon.wait(), Some(0), "{}", daemon.log());
        assert!(daemon.log().contains("\"stopped\""), "{}", daemon.log());
        daemon.assert_no_secrets();
    }
}

/// SIGTERM while alarms are arriving: every request gets an answer or a refused
/// connection (none hangs), and every alarm answered 202 is in the journal after the exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_answers_every_request_and_keeps_every_202() {
    let (_fake, running) = fake(Timeline::instant()).await;
    let dir = workdir();
    let mut daemon = Daemon::start(dir.path(), &running.base_url(), false);
    assert_eq!(daemon.alarm(MEMORY_85).await, 202);
    let url = format!("{}/cloudamqp/alarm?token={}", daemon.base, support::TOKEN);
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(15))
        .build()
        .unwrap();
    let senders: Vec<_> = (0..32)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let mut accepted = Vec::new();
                let mut answered = 0;
                for _ in 0..200 {
                    let response = match client.post(&url).body(MEMORY_85).send().await {
                        Ok(response) => response,
                        Err(e) if e.is_timeout() => panic!("a request hung: {e}"),
                        // The listener is closed: the daemon is stopping.
                        Err(_) => break,
                    };
                    answered += 1;
                    if response.status() == 202 {
                        let body: serde_json::Value = response.json().await.unwrap();
                        accepted.push(body["alarm_id"].as_str().unwrap().parse::<i64>().unwrap());
                    }
                }
                (answered, accepted)
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    daemon.signal("TERM");
    let mut answered = 0;
    let mut accepted = Vec::new();
    for sender in senders {
        let (count, ids) = sender.await.expect("a request hung or failed");
        answered += count;
        accepted.extend(ids);
    }
    assert_eq!(daemon.wait(), Some(0), "{}", daemon.log());
    assert!(
        accepted.len() > 32,
        "only {} alarms were accepted before the stop",
        accepted.len()
    );
    assert!(answered < 32 * 200, "the stop came after all the load");
    let journaled: std::collections::HashSet<i64> =
        support::query(dir.path(), "SELECT id FROM alarms")
            .into_iter()
            .map(|row| row[0].as_i64().unwrap())
            .collect();
    let lost: Vec<_> = accepted
        .iter()
        .filter(|id| !journaled.contains(id))
        .collect();
    assert!(lost.is_empty(), "answered 202 but not journaled: {lost:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_demo_goes_up_within_seconds_and_back_down_after_a_quiet_minute() {
    let dir = workdir();
    let mut command = Command::new(env!("CARGO_BIN_EXE_cloudamqp-autoscaler"));
    command.args(["serve", "--demo"]).current_dir(dir.path());
    for (name, _) in std::env::vars() {
        if name.starts_with("AUTOSCALER__") || name.starts_with("CLOUDAMQP_") || name == "RUST_LOG"
        {
            command.env_remove(name);
        }
    }
    command
        .env("AUTOSCALER__SERVER__BIND", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = command.spawn().unwrap();
    // The banner names the address and gives the curl line to send the alarm.
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut banner = String::new();
    let mut curl = None;
    for line in stdout.lines().map_while(Result::ok) {
        banner.push_str(&line);
        banner.push('\n');
        if line.trim_start().starts_with("curl -X POST") {
            curl = Some(line.trim().to_owned());
            break;
        }
    }
    let curl = curl.unwrap_or_else(|| panic!("no curl line in: {banner}"));
    let url = curl.split_whitespace().nth(3).unwrap().to_owned();
    let body = curl.split('\'').nth(1).unwrap().to_owned();
    let base = url.trim_end_matches("/cloudamqp/alarm").to_owned();
    let daemon = Daemon {
        child,
        base,
        log: Arc::new(Mutex::new(banner)),
    };
    assert_eq!(
        reqwest::Client::new()
            .post(&url)
            .body(body)
            .send()
            .await
            .unwrap()
            .status(),
        202
    );
    let status = daemon
        .wait_for("the demo change", |s| {
            s["instances"][ID.to_string()]["last_change"]["result"] == "completed"
        })
        .await;
    assert_eq!(status["mode"], "live");
    assert_eq!(status["instances"][ID.to_string()]["plan"], "hare-1");
    assert!(dir.path().join("state/demo/autoscaler.sqlite3").exists());

    // The whole cycle: a second alarm in the quiet minute holds it; a minute after that
    // alarm, and a window of passing looks, it is back on bunny-1.
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let second = jiff::Timestamp::now();
    assert_eq!(daemon.alarm(&body_of(&curl)).await, 202);
    let started = std::time::Instant::now();
    let down = loop {
        let status = daemon.status().await;
        let instance = &status["instances"][ID.to_string()];
        if instance["last_change"]["direction"] == "down"
            && instance["last_change"]["result"] == "completed"
        {
            break instance.clone();
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(150),
            "no step down: {status:#}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    assert_eq!(down["plan"], "bunny-1", "{down:#}");
    assert_eq!(down["floor"], "bunny-1", "{down:#}");
    let finished: jiff::Timestamp = down["last_change"]["finished_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        finished.duration_since(second) >= jiff::SignedDuration::from_secs(60),
        "held for the quiet minute after the second alarm: {second} -> {finished}"
    );
}

/// The JSON body of the banner's curl line.
fn body_of(curl: &str) -> String {
    curl.split('\'').nth(1).unwrap().to_owned()
}

/// A start refused because the port is taken has done nothing (the port is bound before the
/// store opens): on a fresh directory no state directory is made; on one a `kill -9` left
/// with an undecided alarm, the alarm is still undecided and CloudAMQP was not called.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_refused_for_a_taken_port_changes_nothing() {
    let (fake, running) = fake(Timeline::instant()).await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let refused_start = |dir: &std::path::Path| {
        let output = command(
            dir,
            &running.base_url(),
            true,
            &[("AUTOSCALER__SERVER__BIND", addr.as_str())],
        )
        .output()
        .unwrap();
        let log = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(2), "{log}");
        assert!(log.contains("cannot listen"), "{log}");
        log
    };

    let fresh = workdir();
    let log = refused_start(fresh.path());
    assert!(
        !fresh.path().join("state").exists(),
        "the store was opened: {log}"
    );

    // An alarm recorded, its decision held up by a slow read, then `kill -9`.
    let dir = workdir();
    fake.inject(
        FaultRule::once(Fault::Slow(std::time::Duration::from_secs(3)))
            .method("GET")
            .path(PathMatch::Exact(format!("/api/instances/{ID}"))),
    );
    let mut daemon = Daemon::start(dir.path(), &running.base_url(), true);
    assert_eq!(daemon.post_alarm(MEMORY_85).await.0, 202);
    let started = std::time::Instant::now();
    while fake.requests().is_empty() {
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    daemon.signal("KILL");
    assert_eq!(daemon.wait(), None, "killed by a signal");
    let undecided = "SELECT count(*) FROM alarms WHERE decided_at IS NULL";
    assert_eq!(query(dir.path(), undecided), [[1]]);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let calls = fake.requests().len();

    let log = refused_start(dir.path());
    assert_eq!(query(dir.path(), undecided), [[1]], "{log}");
    assert_eq!(fake.requests().len(), calls, "CloudAMQP was called: {log}");
}

/// The signal handlers come first, before the store is opened and the work left by a stop
/// resumed (the first of these events in the log is the handlers'; before a0b5437 it was
/// the store's, and a SIGHUP meanwhile killed the process). SIGHUPs sent from then until the
/// daemon serves (a `systemctl reload` right after a start) are reloads, not the end. The
/// window is milliseconds: a run counts only when the daemon logged a SIGHUP it received
/// before "serving"; else it is run again (at most 5 times).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sighup_during_start_up_does_not_kill_the_daemon() {
    let (_fake, running) = fake(Timeline::instant()).await;
    for _ in 0..5 {
        let dir = workdir();
        let mut child = command(
            dir.path(),
            &running.base_url(),
            true,
            &[("AUTOSCALER__LOG__LEVEL", "debug")],
        )
        .spawn()
        .unwrap();
        let pid = child.id().to_string();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&log);
        let (events, seen) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                for (needle, event) in [
                    ("listening for SIGHUP", "handlers"),
                    ("SIGHUP received", "hup"),
                    ("state store open", "store"),
                    ("cloudamqp-autoscaler serving", "serving"),
                ] {
                    if line.contains(needle) {
                        let _ = events.send(event);
                    }
                }
                sink.lock().unwrap().push_str(&line);
                sink.lock().unwrap().push('\n');
            }
        });
        let within = std::time::Duration::from_secs(20);
        assert_eq!(
            seen.recv_timeout(within),
            Ok("handlers"),
            "{}",
            log.lock().unwrap()
        );
        let started = std::time::Instant::now();
        let mut received_before_serving = false;
        loop {
            match seen.try_recv() {
                Ok("serving") => break,
                Ok("hup") => received_before_serving = true,
                _ => {}
            }
            let sent = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
            assert!(
                sent.success(),
                "the daemon is gone: {}",
                log.lock().unwrap()
            );
            assert!(
                started.elapsed() < within,
                "never served: {}",
                log.lock().unwrap()
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(child.try_wait().unwrap(), None, "{}", log.lock().unwrap());
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert_eq!(
            child.wait().unwrap().code(),
            Some(0),
            "{}",
            log.lock().unwrap()
        );
        if received_before_serving {
            return;
        }
        eprintln!("no SIGHUP reached the daemon before it served; again");
    }
    panic!("in 5 starts, no SIGHUP reached the daemon before it served");
}

#[path = "notify_support/mod.rs"]
mod capture;

/// Events recorded while their sink was down survive a `kill -9` and are delivered after
/// the restart, once each; neither the sink's URL nor its secret is ever logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_pending_at_a_kill_9_are_delivered_after_the_restart() {
    let (_fake, running) = fake(Timeline {
        lag: std::time::Duration::from_millis(50),
        reconfigure: std::time::Duration::from_millis(100),
        stuck: false,
    })
    .await;
    let dir = workdir();
    let secret = "process-notify-secret-91ab";
    // Nothing listens on the sink's port yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/private-hook-path");
    let env = [
        ("AUTOSCALER__NOTIFY__WEBHOOK__URL", url.as_str()),
        ("AUTOSCALER__NOTIFY__WEBHOOK__SECRET", secret),
    ];
    let mut daemon = Daemon::start_with(dir.path(), &running.base_url(), true, &env);
    assert_eq!(daemon.alarm(MEMORY_85).await, 202);
    daemon
        .wait_for("two events pending", |s| s["notify"]["pending"] == 2)
        .await;
    daemon.signal("KILL");
    assert_eq!(daemon.wait(), None, "killed by a signal");
    let mut log = daemon.log();

    // The sink comes up on that port; the restarted daemon delivers both, in order.
    let sink = capture::Capture::start_on(port).await;
    let daemon = Daemon::start_with(dir.path(), &running.base_url(), true, &env);
    let started = std::time::Instant::now();
    while sink.requests().len() < 2 {
        assert!(
            started.elapsed() < support::WITHIN,
            "{:?}\n{}",
            sink.requests(),
            daemon.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let types: Vec<String> = sink
        .requests()
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(types, ["change.started", "change.completed"]);
    daemon
        .wait_for("nothing pending", |s| s["notify"]["pending"] == 0)
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(sink.requests().len(), 2, "each once");
    log.push_str(&daemon.log());
    for hidden in [secret, "private-hook-path"] {
        assert!(!log.contains(hidden), "{hidden} in the log:\n{log}");
    }
    daemon.assert_no_secrets();
}
