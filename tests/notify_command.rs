//! `notify test` as its own process against a capture server.

#[path = "notify_support/mod.rs"]
mod support;

use std::process::{Command, Output};

use support::{Capture, Reply};

const SECRET: &str = "cmd-hmac-s3cret-41";
const ROUTING_KEY: &str = "cmd-pd-s3cret-key-88";

/// `notify test` with `env` and nothing else of ours in its environment, in a fresh dir.
async fn notify_test(env: Vec<(&'static str, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_cloudamqp-autoscaler"));
        command.args(["notify", "test"]).current_dir(dir.path());
        for (name, _) in std::env::vars() {
            if name.starts_with("AUTOSCALER__") || name.starts_with("CLOUDAMQP_") {
                command.env_remove(name);
            }
        }
        command.envs(env);
        command.output().unwrap()
    })
    .await
    .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn all_sinks(capture: &Capture) -> Vec<(&'static str, String)> {
    vec![
        (
            "AUTOSCALER__NOTIFY__WEBHOOK__URL",
            capture.url("/hook/s3cret-path"),
        ),
        ("AUTOSCALER__NOTIFY__WEBHOOK__SECRET", SECRET.into()),
        (
            "AUTOSCALER__NOTIFY__SLACK__URL",
            capture.url("/services/s3cret-slack"),
        ),
        (
            "AUTOSCALER__NOTIFY__PAGERDUTY__ROUTING_KEY",
            ROUTING_KEY.into(),
        ),
        (
            "AUTOSCALER__NOTIFY__PAGERDUTY__URL",
            capture.url("/v2/enqueue"),
        ),
    ]
}

fn assert_no_secret(printed: &str) {
    for secret in ["s3cret", SECRET, ROUTING_KEY, "127.0.0.1"] {
        assert!(!printed.contains(secret), "{secret} printed: {printed}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sink_gets_the_test_event_and_the_command_exits_0() {
    let capture = Capture::start(vec![]).await;
    let output = notify_test(all_sinks(&capture)).await;
    let printed = text(&output);
    assert_eq!(output.status.code(), Some(0), "{printed}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("configured sinks: webhook, slack, pagerduty"),
        "{stdout}"
    );
    for line in ["webhook: sent", "slack: sent", "pagerduty: sent"] {
        assert!(stdout.lines().any(|l| l == line), "{line}: {stdout}");
    }
    assert_no_secret(&printed);

    let requests = capture.requests();
    let mut paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "/hook/s3cret-path",
            "/services/s3cret-slack",
            "/v2/enqueue",
            "/v2/enqueue"
        ]
    );
    let hook = requests
        .iter()
        .find(|r| r.path.starts_with("/hook"))
        .unwrap();
    assert_eq!(hook.json()["type"], "test");
    assert_eq!(hook.json()["mode"], "dry-run");
    assert!(hook.header("x-autoscaler-signature").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_is_printed_and_exits_1() {
    let capture = Capture::start(vec![Reply::status(400).body("invalid_token")]).await;
    let output = notify_test(vec![(
        "AUTOSCALER__NOTIFY__SLACK__URL",
        capture.url("/services/s3cret-slack"),
    )])
    .await;
    let printed = text(&output);
    assert_eq!(output.status.code(), Some(1), "{printed}");
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .any(|l| l == "slack: refused: 400 Bad Request: invalid_token"),
        "{printed}"
    );
    assert_no_secret(&printed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_sink_fails_once_and_exits_1() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let output = notify_test(vec![(
        "AUTOSCALER__NOTIFY__WEBHOOK__URL",
        format!("http://127.0.0.1:{port}/hook/s3cret-path"),
    )])
    .await;
    let printed = text(&output);
    assert_eq!(output.status.code(), Some(1), "{printed}");
    assert!(
        printed.contains("webhook: failed: cannot connect"),
        "{printed}"
    );
    assert_no_secret(&printed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_sink_or_a_bad_setting_exits_2() {
    let output = notify_test(vec![]).await;
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("no notification sink is configured"));

    let output = notify_test(vec![(
        "AUTOSCALER__NOTIFY__SLACK__URL",
        "ftp://s3cret-host/x".into(),
    )])
    .await;
    let printed = text(&output);
    assert_eq!(output.status.code(), Some(2), "{printed}");
    assert!(printed.contains("notify.slack.url"), "{printed}");
    assert_no_secret(&printed);
}
