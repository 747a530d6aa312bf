//! `pause` and `resume` through the built binary against a daemon in its own process, and
//! a pause that outlives a `kill -9`.

#[path = "state_query/mod.rs"]
mod state_query;
#[path = "process_support/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Command, Output};

use cloudamqp_autoscaler::fake::Timeline;
use serde_json::Value;
use support::{Daemon, fake, query, workdir};

const ADMIN: &str = "process-admin-token-51d0e2";

/// The binary with `args`, the admin token `token` and nothing else of ours in its
/// environment, run in `dir`.
fn cli(dir: &Path, token: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cloudamqp-autoscaler"));
    command.args(args).current_dir(dir);
    for (name, _) in std::env::vars() {
        if name.starts_with("AUTOSCALER__") || name.starts_with("CLOUDAMQP_") {
            command.env_remove(name);
        }
    }
    if let Some(token) = token {
        command.env("AUTOSCALER__SERVER__ADMIN_TOKEN", token);
    }
    command.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn pauses(daemon: &Daemon) -> Vec<Value> {
    let body: Value = reqwest::get(format!("{}/pauses", daemon.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["pauses"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_through_the_binary() {
    let (_fake, running) = fake(Timeline::instant()).await;
    let dir = workdir();
    let daemon = Daemon::start_with(
        dir.path(),
        &running.base_url(),
        false,
        &[("AUTOSCALER__SERVER__ADMIN_TOKEN", ADMIN)],
    );
    let url = daemon.base.as_str();

    let out = cli(
        dir.path(),
        Some(ADMIN),
        &[
            "pause",
            "--for",
            "2h",
            "--instance",
            "prod-*",
            "--reason",
            "x",
            "--url",
            url,
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    let listed = pauses(&daemon).await;
    assert_eq!(listed.len(), 1);
    let id = listed[0]["pause_id"].as_str().unwrap();
    assert!(printed.contains(id), "{printed}");
    assert!(
        printed.contains(listed[0]["until"].as_str().unwrap()),
        "{printed}"
    );
    assert_eq!(listed[0]["instances"], serde_json::json!(["prod-*"]));
    assert_eq!(listed[0]["reason"], "x");
    assert_eq!(listed[0]["direction"], "both");

    let out = cli(
        dir.path(),
        Some(ADMIN),
        &[
            "pause",
            "--until",
            "2999-01-01T00:00:00Z",
            "--direction",
            "down",
            "--url",
            url,
            "--format",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["until"], "2999-01-01T00:00:00Z");
    assert_eq!(pauses(&daemon).await.len(), 2);

    // Usage errors are 2 and send nothing.
    for args in [
        &["pause", "--url", url][..],
        &["pause", "--for", "0s", "--url", url],
        &[
            "pause",
            "--for",
            "2h",
            "--until",
            "2999-01-01T00:00:00Z",
            "--url",
            url,
        ],
        &[
            "pause",
            "--for",
            "2h",
            "--direction",
            "sideways",
            "--url",
            url,
        ],
    ] {
        let out = cli(dir.path(), Some(ADMIN), args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    // No token, a wrong token, no daemon: 2, with a clear message.
    let out = cli(dir.path(), None, &["pause", "--for", "2h", "--url", url]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("server.admin_token"),
        "{}",
        text(&out.stderr)
    );
    let out = cli(
        dir.path(),
        Some("wrong"),
        &["pause", "--for", "2h", "--url", url],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("401"), "{}", text(&out.stderr));
    let out = cli(
        dir.path(),
        Some(ADMIN),
        &["resume", "--url", "http://127.0.0.1:9"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("cannot reach the daemon"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(pauses(&daemon).await.len(), 2);

    // One by id, then an unknown id (1), then every other one.
    let out = cli(dir.path(), Some(ADMIN), &["resume", id, "--url", url]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(id));
    let out = cli(dir.path(), Some(ADMIN), &["resume", id, "--url", url]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no pause"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(pauses(&daemon).await.len(), 1);
    let out = cli(
        dir.path(),
        Some(ADMIN),
        &["resume", "--url", url, "--format", "json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let ended: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ended["ended"], serde_json::json!([created["pause_id"]]));
    assert!(pauses(&daemon).await.is_empty());

    assert!(!daemon.log().contains(ADMIN), "the admin token in the log");
    assert!(daemon.log().contains("pause created"), "{}", daemon.log());
    daemon.assert_no_secrets();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_answered_201_survives_a_kill_9() {
    let (_fake, running) = fake(Timeline::instant()).await;
    let dir = workdir();
    let env = [("AUTOSCALER__SERVER__ADMIN_TOKEN", ADMIN)];
    let mut daemon = Daemon::start_with(dir.path(), &running.base_url(), false, &env);
    let response = reqwest::Client::new()
        .post(format!("{}/pause", daemon.base))
        .bearer_auth(ADMIN)
        .body(r#"{"for":"2h","direction":"up","reason":"freeze"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let created: Value = response.json().await.unwrap();
    // At once after the 201: SIGKILL, no chance to flush anything.
    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();
    assert_eq!(
        query(dir.path(), "SELECT id FROM pauses WHERE ended_at IS NULL"),
        vec![vec![created["pause_id"].clone()]]
    );

    let daemon = Daemon::start_with(dir.path(), &running.base_url(), false, &env);
    let listed = pauses(&daemon).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["pause_id"], created["pause_id"]);
    assert_eq!(listed[0]["until"], created["until"]);
    assert_eq!(listed[0]["direction"], "up");
    assert_eq!(listed[0]["reason"], "freeze");
    assert_eq!(daemon.status().await["pauses"], Value::Array(listed));
}
