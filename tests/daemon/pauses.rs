//! Pauses at run time: the admin token, `POST /pause`, `DELETE /pause/{id}`, `GET /pauses`,
//! `/status` `pauses`, durability across restarts, expiry on the daemon's clock, and the
//! reads off loopback.

use std::time::Duration;

use base64::Engine as _;
use cloudamqp_autoscaler::store::Fault;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Spawn, TestApp, spawn_app};
use cloudamqp_autoscaler::clock::OffsetClock;

const ADMIN: &str = "admin-token-8d41c07e";

fn with_admin() -> Spawn {
    Spawn::default().env("AUTOSCALER__SERVER__ADMIN_TOKEN", ADMIN)
}

impl TestApp {
    async fn post_pause(&self, token: Option<&str>, body: &str) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!("{}/pause", self.base))
            .body(body.to_owned());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    async fn delete_pause(&self, token: Option<&str>, id: &str) -> reqwest::Response {
        let mut request = self.http.delete(format!("{}/pause/{id}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    async fn pauses(&self) -> Vec<Value> {
        let response = self.get("/pauses").await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        body["pauses"].as_array().unwrap().clone()
    }

    /// Creates a pause with `body`; its id.
    async fn pause(&self, body: &str) -> String {
        let response = self.post_pause(Some(ADMIN), body).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        body["pause_id"].as_str().unwrap().to_owned()
    }
}

async fn error_of(response: reqwest::Response) -> String {
    let body: Value = response.json().await.unwrap();
    body["error"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_admin_token_the_admin_api_is_off_and_the_reads_open() {
    let app = spawn_app(Spawn::default()).await;
    let response = app.post_pause(Some(ADMIN), r#"{"for":"2h"}"#).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(
        error_of(response)
            .await
            .contains("server.admin_token is not set")
    );
    let response = app.delete_pause(None, "x").await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(app.pauses().await.is_empty());
    assert_eq!(app.status().await["pauses"], json!([]));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_wrong_admin_token_is_refused_and_a_guesser_throttled() {
    let app = spawn_app(with_admin()).await;
    let response = app.post_pause(None, r#"{"for":"2h"}"#).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert!(
        error_of(response)
            .await
            .contains("missing or wrong admin token")
    );
    // Neither the webhook token nor the token in the query string will do.
    let response = app
        .post_pause(Some(crate::support::TOKEN), r#"{"for":"2h"}"#)
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = app
        .http
        .post(format!("{}/pause?token={ADMIN}", app.base))
        .body(r#"{"for":"2h"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.delete_pause(Some("wrong"), "x").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert!(app.pauses().await.is_empty(), "nothing was paused");

    let mut throttled = None;
    for _ in 0..30 {
        let response = app.post_pause(Some("guess"), r#"{"for":"2h"}"#).await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            throttled = Some(response);
            break;
        }
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let throttled = throttled.expect("a guesser is throttled");
    assert!(throttled.headers().contains_key("retry-after"));
    // The right token still gets in, and the webhook has a budget of its own.
    app.pause(r#"{"for":"2h"}"#).await;
    assert_eq!(
        app.alarm(crate::support::MEMORY_85).await.status(),
        StatusCode::ACCEPTED
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_pause_request_is_a_400_with_a_json_error() {
    let app = spawn_app(with_admin()).await;
    for (body, expected) in [
        (r#"{"for":"2h","until":"2999-01-01T00:00:00Z"}"#, "not both"),
        (r#"{}"#, r#"give "for""#),
        (r#"{"reason":"x"}"#, r#"give "for""#),
        (r#"{"for":"0s"}"#, "positive"),
        (r#"{"for":"-1h"}"#, "positive"),
        (r#"{"for":"a while"}"#, "positive"),
        (r#"{"until":"2020-01-01T00:00:00Z"}"#, "not in the future"),
        (r#"{"until":"next friday"}"#, "RFC 3339"),
        (r#"{"for":"2h","direction":"sideways"}"#, "direction"),
        (r#"{"for":"2h","instances":["prod",""]}"#, "non-empty"),
        (r#"{"for":"2h","instances":[7]}"#, "invalid pause request"),
        (r#"{"for":"2h","until_when":"x"}"#, "unknown field"),
        (r#"{"for":"2h""#, "invalid pause request"),
        ("not json", "invalid pause request"),
    ] {
        let response = app.post_pause(Some(ADMIN), body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let error = error_of(response).await;
        assert!(error.contains(expected), "{body}: {error}");
    }
    let long = json!({"for": "2h", "reason": "x".repeat(501)}).to_string();
    let response = app.post_pause(Some(ADMIN), &long).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(app.pauses().await.is_empty());
    assert!(app.query("SELECT id FROM pauses").is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_is_listed_shown_in_status_and_ended_once() {
    let clock = OffsetClock::starting_at(jiff::Timestamp::now());
    let app = spawn_app(Spawn {
        clock: Some(clock.clone()),
        ..with_admin()
    })
    .await;
    let before = jiff::Timestamp::now();
    let response = app
        .post_pause(
            Some(ADMIN),
            r#"{"for":"2h","direction":"up","instances":["prod-*"],"reason":"release"}"#,
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    let id = created["pause_id"].as_str().unwrap().to_owned();
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 4);
    let until: jiff::Timestamp = created["until"].as_str().unwrap().parse().unwrap();
    assert!(until >= before + jiff::SignedDuration::from_hours(2));
    assert!(until <= jiff::Timestamp::now() + jiff::SignedDuration::from_hours(2));
    let later = app.pause(r#"{"until":"2999-01-01T00:00:00+01:00"}"#).await;

    let expected = json!([
        {"pause_id": id, "until": created["until"], "direction": "up",
         "instances": ["prod-*"], "reason": "release"},
        {"pause_id": later, "until": "2998-12-31T23:00:00Z", "direction": "both",
         "instances": [], "reason": null},
    ]);
    assert_eq!(Value::Array(app.pauses().await), expected);
    assert_eq!(app.status().await["pauses"], expected);
    assert!(app.metrics().await.contains("autoscaler_pauses 2"));
    // On disk before the 201.
    assert_eq!(
        app.query("SELECT count(*) FROM pauses WHERE ended_at IS NULL")[0][0],
        2
    );

    assert_eq!(
        app.delete_pause(Some(ADMIN), &id).await.status(),
        StatusCode::NO_CONTENT
    );
    let response = app.delete_pause(Some(ADMIN), &id).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(error_of(response).await.contains("is in force"));
    assert_eq!(
        app.delete_pause(Some(ADMIN), "no-such-pause")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.pauses().await.len(), 1);
    assert_eq!(
        app.query(&format!(
            "SELECT ended_at IS NOT NULL FROM pauses WHERE id = '{id}'"
        ))[0][0],
        1
    );
    // A known path with another method.
    let response = app.get(&format!("/pause/{later}")).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "DELETE");
    let response = app.get("/pause").await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "POST");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_expires_by_itself_on_the_daemons_clock() {
    let clock = OffsetClock::starting_at(jiff::Timestamp::now());
    let app = spawn_app(Spawn {
        clock: Some(clock.clone()),
        ..with_admin()
    })
    .await;
    let short = app.pause(r#"{"for":"30m"}"#).await;
    let long = app.pause(r#"{"for":"3h"}"#).await;
    assert_eq!(app.pauses().await.len(), 2);

    clock.advance(Duration::from_secs(31 * 60));
    let pauses = app.pauses().await;
    assert_eq!(pauses.len(), 1);
    assert_eq!(pauses[0]["pause_id"], long.as_str());
    assert_eq!(app.status().await["pauses"].as_array().unwrap().len(), 1);
    assert!(app.metrics().await.contains("autoscaler_pauses 1"));
    assert_eq!(
        app.delete_pause(Some(ADMIN), &short).await.status(),
        StatusCode::NOT_FOUND,
        "an expired pause is not in force"
    );

    clock.advance(Duration::from_secs(3 * 3600));
    assert!(app.pauses().await.is_empty());
    assert_eq!(app.status().await["pauses"], json!([]));
    assert!(app.metrics().await.contains("autoscaler_pauses 0"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pauses_survive_a_restart_and_ended_or_expired_ones_stay_gone() {
    let clock = OffsetClock::starting_at(jiff::Timestamp::now());
    let app = spawn_app(Spawn {
        clock: Some(clock.clone()),
        ..with_admin()
    })
    .await;
    let kept = app
        .pause(r#"{"for":"2h","direction":"down","instances":["prod"],"reason":"migration"}"#)
        .await;
    let ended = app.pause(r#"{"for":"2h"}"#).await;
    let expiring = app.pause(r#"{"for":"10m"}"#).await;
    let ups = app.pause(r#"{"for":"3h","direction":"up"}"#).await;
    app.delete_pause(Some(ADMIN), &ended).await;
    let before = app.pauses().await;
    assert_eq!(before.len(), 3);
    let stopped = app.stop().await;

    clock.advance(Duration::from_secs(11 * 60));
    let app = stopped
        .restart(Spawn {
            clock: Some(clock.clone()),
            ..with_admin()
        })
        .await;
    let after = app.pauses().await;
    assert_eq!(
        Value::Array(after),
        json!([before[1], before[2]]),
        "{expiring} expired"
    );
    assert_eq!(before[1]["pause_id"], kept.as_str());
    assert_eq!(before[2]["pause_id"], ups.as_str());
    assert!(app.metrics().await.contains("autoscaler_pauses 2"));
    // Still in force, not only listed: the alarm is held.
    assert_eq!(
        app.alarm(crate::support::MEMORY_85).await.status(),
        StatusCode::ACCEPTED
    );
    app.wait_for("a skip with paused", Duration::from_secs(15), |i| {
        i["last_decision"]["reason"] == "paused"
    })
    .await;
    assert!(app.puts().is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_the_store_cannot_record_is_a_503_and_not_in_force() {
    let app = spawn_app(with_admin()).await;
    app.handle
        .store()
        .inject_fault(Some(Fault::ReadOnly))
        .await
        .unwrap();
    let response = app.post_pause(Some(ADMIN), r#"{"for":"2h"}"#).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    assert!(error_of(response).await.contains("could not be recorded"));
    assert!(app.pauses().await.is_empty());
    app.handle.store().inject_fault(None).await.unwrap();
    app.pause(r#"{"for":"2h"}"#).await;
    assert_eq!(app.pauses().await.len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_loopback_the_reads_need_the_admin_token_and_the_probes_do_not() {
    let app = spawn_app(with_admin().env("AUTOSCALER__SERVER__BIND", "0.0.0.0:0")).await;
    for path in ["/status", "/pauses"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert!(
            response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Basic")
        );
        assert!(error_of(response).await.contains("admin token"));
        let bearer = app
            .http
            .get(format!("{}{path}", app.base))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(bearer.status(), StatusCode::OK, "{path}");
        let basic = app
            .http
            .get(format!("{}{path}", app.base))
            .header(
                "authorization",
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("me:{ADMIN}"))
                ),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(basic.status(), StatusCode::OK, "{path}");
        let wrong = app
            .http
            .get(format!("{}{path}", app.base))
            .basic_auth("me", Some("wrong"))
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    for path in ["/metrics", "/healthz", "/readyz"] {
        assert_eq!(app.get(path).await.status(), StatusCode::OK, "{path}");
    }
    app.stop().await;

    // Off loopback without an admin token they are public (serve warns).
    let app = spawn_app(Spawn::default().env("AUTOSCALER__SERVER__BIND", "0.0.0.0:0")).await;
    assert_eq!(app.get("/status").await.status(), StatusCode::OK);
    assert_eq!(app.get("/pauses").await.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_instance_is_skipped_with_paused_and_acts_once_resumed() {
    let app = spawn_app(Spawn {
        rules: Some(crate::guardrails::rules("")),
        timeline: crate::guardrails::quick(),
        ..with_admin()
    })
    .await;
    let id = app
        .pause(
            r#"{"for": "2h", "direction": "up", "instances": ["prod*"], "reason": "incident 42"}"#,
        )
        .await;
    assert_eq!(
        app.alarm(crate::support::MEMORY_85).await.status(),
        StatusCode::ACCEPTED
    );
    let instance = crate::guardrails::skipped(&app, "paused").await;
    let detail = instance["last_decision"]["detail"].as_str().unwrap();
    assert!(
        detail.contains(&id) && detail.contains("incident 42"),
        "{detail}"
    );
    assert!(app.puts().is_empty());
    assert_eq!(
        app.delete_pause(Some(ADMIN), &id).await.status(),
        StatusCode::NO_CONTENT
    );
    crate::guardrails::changes_to(&app, "hare-1").await;
    assert_eq!(app.puts().len(), 1);
}
