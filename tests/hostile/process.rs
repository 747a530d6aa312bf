//! The built binary under a subset of the barrage: its whole JSON log and its whole state
//! directory hold no secret, and credentials posted in alarm bodies are redacted before
//! they reach the disk.

use std::path::Path;

use cloudamqp_autoscaler::fake::{SECRET_MARKER, Timeline};
use reqwest::StatusCode;

use crate::process_support::{Daemon, ID, KEY, TOKEN, fake, workdir};

/// Credentials posted in alarm bodies; none may be kept or logged.
const POSTED_CREDENTIALS: &[&str] = &[
    "user:secret",
    "hunter2",
    "s3cr3t-one",
    "s3cr3t-two",
    "kind-secret",
    "time-secret",
    "key-in-body-123",
    "pw-in-body-456",
];

/// Every file under `dir`, as bytes, must hold none of `needles`.
fn assert_files_hold_none(dir: &Path, needles: &[&str]) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            assert_files_hold_none(&path, needles);
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        for needle in needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle} is in {}",
                path.display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_process_logs_and_keeps_no_secret_under_a_barrage() {
    let (_fake, running) = fake(Timeline::instant()).await;
    let dir = workdir();
    let mut daemon = Daemon::start(dir.path(), &running.base_url(), false);
    let http = reqwest::Client::new();
    let url = format!("{}/cloudamqp/alarm", daemon.base);
    let one_off = |index: usize| {
        let mut token: Vec<char> = TOKEN.chars().collect();
        token[index] = if token[index] == 'x' { 'y' } else { 'x' };
        token.into_iter().collect::<String>()
    };
    let last = TOKEN.len() - 1;

    // Wrong tokens, near misses included.
    let body = crate::support::MEMORY_85;
    for token in [
        String::new(),
        "wrong".to_owned(),
        one_off(0),
        one_off(last / 2),
        one_off(last),
        format!("{TOKEN}%20"),
        TOKEN.to_uppercase(),
    ] {
        let response = http
            .post(format!("{url}?token={token}"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{token:?}");
    }
    for request in [
        http.post(&url),
        http.post(&url).bearer_auth(one_off(last)),
        http.post(&url).basic_auth("", Some(TOKEN)),
    ] {
        let response = request.body(body).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }

    // Bad bodies with the right token.
    for bad in [
        "not json",
        "[]",
        "{\"alarm_type\":\"memory\",\"value\":\"NaN\"}",
        &"[".repeat(10_000),
        r#"{"alarm_type":"memory","instance_id":"prod"}"#,
    ] {
        assert_eq!(daemon.alarm(bad).await, 400);
    }
    assert_eq!(
        daemon
            .alarm(&format!(
                "{{\"alarm_type\":\"notice\",\"x\":\"{}\"}}",
                "x".repeat(64 * 1024)
            ))
            .await,
        413
    );

    // Alarms carrying credential-looking strings, in every free-text place.
    let with_credentials = format!(
        r#"{{"alarm_type":"memory","value":85,"instance_id":{ID},
            "url":"amqps://user:secret@host.cloudamqp.com/vhost",
            "message":"broker amqps://admin:hunter2@host.cloudamqp.com/vh is slow",
            "note":"old amqps://a:s3cr3t-one@h1.example/v, new amqps://b:s3cr3t-two@h2.example/v",
            "apikey":"key-in-body-123",
            "nested":{{"password":"pw-in-body-456","urls":["amqps://u:secret@x/y"]}}}}"#
    );
    assert_eq!(daemon.alarm(&with_credentials).await, 202);
    let odd_fields = r#"{"alarm_type":"amqps://ops:kind-secret@host/vh",
        "triggered_at":"amqps://ops:time-secret@host/vh","value":1}"#;
    assert_eq!(daemon.alarm(odd_fields).await, 202);
    daemon
        .wait_for("both alarms decided", |_| {
            crate::support::query(
                &dir.path().join("state"),
                "SELECT count(*) FROM alarms WHERE decided_at IS NULL",
            )[0][0]
                == 0
        })
        .await;
    let instance = &daemon.status().await["instances"][ID.to_string()];
    assert_eq!(
        instance["last_decision"]["decision"], "would_change_plan",
        "{instance}"
    );

    // The journal keeps the alarms, with the credentials redacted.
    let rows = crate::support::query(
        &dir.path().join("state"),
        "SELECT body, message, triggered_at, kind FROM alarms ORDER BY id",
    );
    assert_eq!(rows.len(), 2);
    let journal = format!("{rows:?}");
    assert!(journal.contains("[redacted]"), "{journal}");
    assert!(
        journal.contains("host.cloudamqp.com/vh is slow"),
        "{journal}"
    );
    for needle in POSTED_CREDENTIALS {
        assert!(!journal.contains(needle), "{needle} journaled: {journal}");
    }

    // The whole log, and every byte of the state directory, running and stopped.
    let secrets: Vec<&str> = [KEY, TOKEN, SECRET_MARKER]
        .into_iter()
        .chain(POSTED_CREDENTIALS.iter().copied())
        .collect();
    daemon.assert_no_secrets();
    let log = daemon.log();
    assert!(log.contains("missing or wrong token"), "{log}");
    for needle in &secrets {
        assert!(!log.contains(needle), "{needle} logged:\n{log}");
    }
    assert_files_hold_none(&dir.path().join("state"), &secrets);
    daemon.signal("TERM");
    assert_eq!(daemon.wait(), Some(0));
    daemon.assert_no_secrets();
    assert_files_hold_none(&dir.path().join("state"), &secrets);
}
