//! Every status code of the webhook, and that refused requests record nothing.

use std::time::Duration;

use cloudamqp_autoscaler::fake::{Fault, FaultRule, PathMatch};
use reqwest::StatusCode;

use crate::support::{MEMORY_85, Spawn, TOKEN, spawn_app};

fn alarms_recorded(app: &crate::support::TestApp) -> i64 {
    app.query("SELECT count(*) FROM alarms")[0][0]
        .as_i64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_alarm_is_202_with_its_id_and_recorded() {
    let app = spawn_app(Spawn {
        live: false,
        ..Spawn::default()
    })
    .await;
    let response = app.alarm(MEMORY_85).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: serde_json::Value = response.json().await.unwrap();
    let id = body["alarm_id"]
        .as_str()
        .expect("alarm_id is a string")
        .to_owned();
    let rows = app.query(&format!(
        "SELECT kind, value, instance, body FROM alarms WHERE id = {id}"
    ));
    assert_eq!(rows[0][0], "memory");
    assert_eq!(rows[0][1], 85.0);
    assert_eq!(rows[0][2], "359559");
    assert!(
        rows[0][3]
            .as_str()
            .unwrap()
            .contains("\"alarm_type\":\"memory\"")
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_may_come_as_a_bearer_header_and_any_content_type() {
    let app = spawn_app(Spawn {
        live: false,
        ..Spawn::default()
    })
    .await;
    let response = app
        .http
        .post(format!("{}/cloudamqp/alarm", app.base))
        .bearer_auth(TOKEN)
        .header("Content-Type", "text/plain")
        .body(MEMORY_85)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_wrong_tokens_are_401_and_record_nothing() {
    let app = spawn_app(Spawn {
        live: false,
        ..Spawn::default()
    })
    .await;
    let url = format!("{}/cloudamqp/alarm", app.base);
    let near_miss = format!("{}X", &TOKEN[..TOKEN.len() - 1]);
    for request in [
        app.http.post(&url),
        app.http.post(format!("{url}?token=wrong")),
        app.http.post(format!("{url}?token={near_miss}")),
        app.http.post(&url).bearer_auth("wrong"),
        app.http.post(&url).basic_auth("", Some(TOKEN)),
    ] {
        let response = request.body(MEMORY_85).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("token"));
    }
    assert_eq!(alarms_recorded(&app), 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_that_keeps_guessing_is_throttled_with_429_but_the_right_token_gets_in() {
    let app = spawn_app(Spawn {
        live: false,
        ..Spawn::default()
    })
    .await;
    let url = format!("{}/cloudamqp/alarm", app.base);
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..25 {
        let response = app
            .http
            .post(format!("{url}?token=guess"))
            .body(MEMORY_85)
            .send()
            .await
            .unwrap();
        statuses.push(response.status());
        last = Some(response);
    }
    assert!(
        statuses[..20]
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    assert!(
        statuses[20..]
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    let wait: u64 = last.unwrap().headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(alarms_recorded(&app), 0);
    // CloudAMQP behind the same reverse proxy, with the right token, still gets in.
    let response = app.alarm(MEMORY_85).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(alarms_recorded(&app), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_bodies_are_400_and_record_nothing() {
    let app = spawn_app(Spawn {
        live: false,
        ..Spawn::default()
    })
    .await;
    for body in [
        "",
        "not json",
        "[1]",
        r#"{"value":85}"#,
        r#"{"type":"memory","value":"NaN"}"#,
        r#"{"type":"memory","instance":"prod"}"#,
    ] {
        let response = app.alarm(body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body:?}");
        let error: serde_json::Value = response.json().await.unwrap();
        assert!(
            error["error"]
                .as_str()
                .unwrap()
                .starts_with("invalid alarm: "),
            "{error}"
        );
    }
    assert_eq!(alarms_recorded(&app), 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_64_kib_are_413_whether_declared_or_streamed() {
    let app = spawn_app(Spawn {
        live: false,
        ..Spawn::default()
    })
    .await;
    let padding = "x".repeat(64 * 1024);
    let big = format!(r#"{{"alarm_type":"memory","value":85,"note":"{padding}"}}"#);
    assert_eq!(
        app.alarm(&big).await.status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // Streamed without a Content-Length.
    let chunks: Vec<Result<String, std::io::Error>> =
        vec![Ok(big[..40_000].to_owned()), Ok(big[40_000..].to_owned())];
    let response = app
        .http
        .post(format!("{}/cloudamqp/alarm?token={TOKEN}", app.base))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Just under the limit is fine.
    let fits = format!(
        r#"{{"alarm_type":"memory","value":85,"note":"{}"}}"#,
        "x".repeat(64 * 1024 - 60)
    );
    assert!(fits.len() <= 64 * 1024);
    assert_eq!(app.alarm(&fits).await.status(), StatusCode::ACCEPTED);
    assert_eq!(alarms_recorded(&app), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_503_with_retry_after_and_records_nothing() {
    let app = spawn_app(Spawn {
        queue_capacity: 1,
        max_concurrent: 1,
        ..Spawn::default()
    })
    .await;
    // The first alarm's decision waits on a slow CloudAMQP, the second waits in the queue.
    app.fake.inject(FaultRule {
        method: Some("GET".into()),
        path: PathMatch::Any,
        fault: Fault::Slow(Duration::from_millis(1500)),
        times: 1,
    });
    assert_eq!(app.alarm(MEMORY_85).await.status(), StatusCode::ACCEPTED);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.alarm(MEMORY_85).await.status(), StatusCode::ACCEPTED);
    let response = app.alarm(MEMORY_85).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(alarms_recorded(&app), 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_are_404_and_wrong_methods_405_with_json_errors() {
    let app = spawn_app(Spawn {
        live: false,
        ..Spawn::default()
    })
    .await;
    let response = app.get("/nope").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response.json::<serde_json::Value>().await.unwrap()["error"].is_string());
    let response = app.get("/cloudamqp/alarm").await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "POST");
    assert!(response.json::<serde_json::Value>().await.unwrap()["error"].is_string());
    let response = app
        .http
        .post(format!("{}/status", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    for path in ["/healthz", "/readyz", "/metrics", "/status"] {
        assert_eq!(app.get(path).await.status(), StatusCode::OK, "{path}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_that_cannot_be_recorded_is_503_never_202_and_recovery_is_automatic() {
    use cloudamqp_autoscaler::store::Fault as StoreFault;
    let app = spawn_app(Spawn {
        live: false,
        ..Spawn::default()
    })
    .await;
    assert_eq!(app.alarm(MEMORY_85).await.status(), StatusCode::ACCEPTED);
    app.handle
        .store()
        .inject_fault(Some(StoreFault::ReadOnly))
        .await
        .unwrap();
    let response = app.alarm(MEMORY_85).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    let error: serde_json::Value = response.json().await.unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("could not be recorded"),
        "{error}"
    );
    assert_eq!(
        app.get("/readyz").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(app.status().await["store"]["healthy"], false);

    app.handle.store().inject_fault(None).await.unwrap();
    assert_eq!(app.alarm(MEMORY_85).await.status(), StatusCode::ACCEPTED);
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    assert_eq!(
        alarms_recorded(&app),
        2,
        "the refused alarm left nothing behind"
    );
    let metrics = app.metrics().await;
    assert!(metrics.contains(r#"outcome="store_failed""#), "{metrics}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_metrics_never_show_the_api_key_the_token_or_instance_credentials() {
    let app = spawn_app(Spawn::default()).await;
    app.alarm(MEMORY_85).await;
    app.wait_for_result(std::time::Duration::from_secs(15))
        .await;
    let wrong = app
        .http
        .post(format!("{}/cloudamqp/alarm?token=nope", app.base))
        .body(MEMORY_85)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let everything = format!(
        "{}\n{}\n{}",
        app.status().await,
        app.metrics().await,
        app.query("SELECT * FROM alarms")
            .iter()
            .map(|r| format!("{r:?}"))
            .collect::<String>()
    );
    for secret in [
        crate::support::KEY,
        TOKEN,
        cloudamqp_autoscaler::fake::SECRET_MARKER,
    ] {
        assert!(!everything.contains(secret), "{secret} leaked");
    }
    app.stop().await;
}
