//! Looking back: `GET /history`, the `history` command as its own process against the
//! store a daemon is writing (and then left), and the dashboard's HTML.

use std::path::Path;
use std::process::Command;

use cloudamqp_autoscaler::fake::SeedInstance;
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{ID, Spawn, TestApp, spawn_app};

const ADMIN: &str = "admin-token-history-51c2";
/// An instance name a page must show as text, never run.
const HOSTILE_NAME: &str = "<script>alert(1)</script>";

/// An app whose instance (named [`HOSTILE_NAME`]) was raised by an alarm, then refused a
/// second alarm for its cooldown: alarm, decision, change, alarm, decision.
pub async fn app_with_history(spawn: Spawn) -> TestApp {
    let app = spawn_app(Spawn {
        instances: vec![SeedInstance::new(ID, HOSTILE_NAME, "bunny-1")],
        ..spawn
    })
    .await;
    app.change_then_cooldown().await;
    app
}

async fn events(app: &TestApp, query: &str) -> Vec<Value> {
    let response = app.get(&format!("/history{query}")).await;
    assert_eq!(response.status(), StatusCode::OK, "{query}");
    let body: Value = response.json().await.unwrap();
    body["events"].as_array().unwrap().clone()
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["kind"].as_str().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_answers_alarms_decisions_and_changes_newest_first_and_filters() {
    let app = app_with_history(Spawn::default()).await;
    let all = events(&app, "").await;
    assert_eq!(
        kinds(&all),
        ["decision", "alarm", "change", "decision", "alarm"],
        "{all:#?}"
    );
    let times: Vec<jiff::Timestamp> = all
        .iter()
        .map(|e| e["at"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    assert!(all.iter().all(|e| e["instance"] == ID));
    let (skip, change, first) = (&all[0], &all[2], &all[4]);
    assert_eq!(skip["decision"], "skip");
    assert_eq!(skip["reason"], "cooldown");
    assert_eq!(skip["direction"], "up");
    assert!(skip["detail"].as_str().unwrap().contains("cool"), "{skip}");
    assert_eq!(change["from"], "bunny-1");
    assert_eq!(change["to"], "hare-1");
    assert_eq!(change["direction"], "up");
    assert_eq!(change["result"], "completed");
    assert!(change["rule"].is_string() && change["finished_at"].is_string());
    assert_eq!(first["type"], "memory");
    assert_eq!(first["value"], 85.0);
    assert!(first["alarm_id"].is_i64());

    assert_eq!(events(&app, "?limit=2").await, all[..2]);
    assert_eq!(events(&app, &format!("?instance={ID}")).await, all);
    assert!(events(&app, "?instance=1").await.is_empty());
    let since = all[1]["at"].as_str().unwrap().replace('+', "%2B");
    assert_eq!(events(&app, &format!("?since={since}")).await, all[..2]);

    for (query, named) in [
        ("instance=prod", "instance"),
        ("since=yesterday", "since"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("colour=blue", "colour"),
    ] {
        let response = app.get(&format!("/history?{query}")).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        let body: Value = response.json().await.unwrap();
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(named), "{query}: {error}");
    }
    let response = app.http.post(format!("{}/history", app.base)).send().await;
    assert_eq!(response.unwrap().status(), StatusCode::METHOD_NOT_ALLOWED);

    // A store that cannot be read (its file moved away under the daemon): 503.
    let db = app.state_dir.join("autoscaler.sqlite3");
    let aside = app.state_dir.join("aside.sqlite3");
    std::fs::rename(&db, &aside).unwrap();
    let response = app.get("/history").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("cannot be read"));
    // The dashboard still shows what the daemon knows.
    let page = app.get("/").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("cannot be read"));
    std::fs::rename(&aside, &db).unwrap();
    assert_eq!(events(&app, "").await.len(), 5);
    app.stop().await;
}

fn history_cli(state_dir: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_cloudamqp-autoscaler"))
        .arg("history")
        .args(args)
        .env("AUTOSCALER__STATE__DIR", state_dir)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_command_reads_the_store_while_the_daemon_runs_and_after_it_stopped() {
    let app = app_with_history(Spawn::default()).await;
    let over_http: Value = app.get("/history").await.json().await.unwrap();
    let state_dir = app.state_dir.clone();

    // While it runs (it holds the store's lock: the command takes none).
    let (code, json, err) = history_cli(&state_dir, &["--format", "json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), over_http);
    let (code, text, err) = history_cli(&state_dir, &[]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(lines[0].contains("skip (cooldown)"), "{text}");
    assert!(
        lines[2].contains("change up bunny-1 -> hare-1: completed"),
        "{text}"
    );
    assert!(lines[4].contains("alarm memory 85"), "{text}");
    let label = format!("{HOSTILE_NAME} ({ID})");
    assert!(lines.iter().all(|l| l.contains(&label)), "{text}");
    // Each line starts with its time, RFC 3339 in UTC.
    for line in &lines {
        let at = line.split_whitespace().next().unwrap();
        assert!(
            at.ends_with('Z') && at.parse::<jiff::Timestamp>().is_ok(),
            "{line}"
        );
    }

    let stopped = app.stop().await;
    let (code, json, err) = history_cli(&stopped.state_dir, &["--format", "json", "--limit", "1"]);
    assert_eq!(code, 0, "{err}");
    let after: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(after["events"][0], over_http["events"][0]);
    assert_eq!(after["events"].as_array().unwrap().len(), 1);
    let (code, text, _) = history_cli(&stopped.state_dir, &["--instance", "1"]);
    assert_eq!((code, text.as_str()), (0, "no events\n"));
    let (code, text, _) = history_cli(&stopped.state_dir, &["--since", "1h"]);
    assert_eq!((code, text.lines().count()), (0, 5));

    // No store there: exit 2, saying so; nothing is created.
    let empty = tempfile::tempdir().unwrap();
    let (code, _, err) = history_cli(&empty.path().join("state"), &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no state store"), "{err}");
    assert!(!empty.path().join("state").exists());
    let (code, _, err) = history_cli(&stopped.state_dir, &["--since", "soon"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--since"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_escapes_what_it_shows_and_answers_404_for_an_unknown_instance() {
    let app = app_with_history(Spawn::default()).await;
    for path in ["/".to_owned(), format!("/instances/{ID}")] {
        let response = app.get(&path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let page = response.text().await.unwrap();
        assert!(!page.contains(HOSTILE_NAME), "{path}: unescaped name");
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{path}"
        );
        assert!(!page.contains("<script"), "{path}");
        assert!(page.contains(r#"name="viewport""#), "{path}");
        assert!(page.contains("hare-1") && page.contains(&ID.to_string()));
        assert!(page.contains("<svg") && page.contains(r#"class="mark alarm""#));
        assert!(page.contains(r#"class="mark change completed""#), "{path}");
        // No external assets.
        assert!(
            !page.contains("src=\"http") && !page.contains("href=\"http"),
            "{path}"
        );
    }
    let page = app
        .get(&format!("/instances/{ID}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("History") && page.contains("skip (cooldown)"));
    for unknown in ["/instances/42", "/instances/%3Cb%3E"] {
        let response = app.get(unknown).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{unknown}");
        let page = response.text().await.unwrap();
        assert!(
            page.contains("No such instance") && !page.contains("<b>"),
            "{page}"
        );
    }
    assert_eq!(app.get("/instances").await.status(), StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_loopback_the_history_and_the_dashboard_need_the_admin_token() {
    let app = spawn_app(
        Spawn::default()
            .env("AUTOSCALER__SERVER__BIND", "0.0.0.0:0")
            .env("AUTOSCALER__SERVER__ADMIN_TOKEN", ADMIN),
    )
    .await;
    for path in [
        "/history".to_owned(),
        "/".into(),
        format!("/instances/{ID}"),
    ] {
        let response = app.get(&path).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert!(
            response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Basic")
        );
        let basic = app
            .http
            .get(format!("{}{path}", app.base))
            .basic_auth("me", Some(ADMIN))
            .send()
            .await
            .unwrap();
        // The instance is unknown until an alarm names it: its page is a 404.
        let expected = if path.starts_with("/instances/") {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::OK
        };
        assert_eq!(basic.status(), expected, "{path}");
    }
    app.stop().await;
}
