//! Injected faults hit matching requests before normal handling, `times` times, oldest rule
//! first, and are recorded with the status they sent.

use std::time::{Duration, Instant};

use cloudamqp_autoscaler::fake::{Fault, FaultRule, PathMatch};
use reqwest::Method;
use serde_json::json;

use super::support::{ID, spawn, status_and_json};

#[tokio::test]
async fn too_many_requests_with_and_without_retry_after() {
    let h = spawn(|_| {}).await;
    h.fake.inject(FaultRule::once(Fault::TooManyRequests {
        retry_after: Some(7),
    }));
    h.fake.inject(FaultRule::once(Fault::TooManyRequests {
        retry_after: None,
    }));
    let first = h
        .request(Method::GET, "/instances")
        .send()
        .await
        .expect("an answer");
    assert_eq!(first.status().as_u16(), 429);
    assert_eq!(
        first
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("7")
    );
    let second = h
        .request(Method::GET, "/instances")
        .send()
        .await
        .expect("an answer");
    assert_eq!(second.status().as_u16(), 429);
    assert!(second.headers().get("retry-after").is_none());
    assert_eq!(h.get("/instances").await.0, 200, "both rules are spent");
    let statuses: Vec<u16> = h.fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 429, 200]);
    h.running.stop().await;
}

#[tokio::test]
async fn times_counts_matching_requests_only() {
    let h = spawn(|_| {}).await;
    let instance = format!("/api/instances/{ID}");
    h.fake.inject(
        FaultRule::once(Fault::ServiceUnavailable)
            .method("PUT")
            .path(PathMatch::Exact(instance))
            .times(2),
    );
    assert_eq!(
        h.get(&format!("/instances/{ID}")).await.0,
        200,
        "GET is not matched"
    );
    assert_eq!(h.put_plan(ID, "hare-1").await.0, 503);
    assert_eq!(h.put_plan(ID, "hare-1").await.0, 503);
    assert_eq!(h.fake.pending_faults(), 0);
    assert_eq!(h.put_plan(ID, "hare-1").await.0, 200);
    assert_eq!(h.fake.put_attempts(), 3);
    assert_eq!(
        h.fake.plan_changes().len(),
        1,
        "faulted PUTs change nothing"
    );
    h.running.stop().await;
}

#[tokio::test]
async fn rules_are_first_in_first_out_and_prefixes_match() {
    let h = spawn(|_| {}).await;
    h.fake
        .inject(FaultRule::once(Fault::Locked).path(PathMatch::Prefix("/api/instances".into())));
    h.fake.inject(FaultRule::once(Fault::BackendTimeout));
    assert_eq!(
        h.get("/plans").await.0,
        400,
        "only the second rule matches /plans"
    );
    assert_eq!(
        h.get(&format!("/instances/{ID}/nodes")).await,
        (
            423,
            json!({"message": "Instance is locked while it is being configured"})
        )
    );
    h.running.stop().await;
}

#[tokio::test]
async fn canned_error_bodies() {
    let h = spawn(|_| {}).await;
    for fault in [
        Fault::BackendTimeout,
        Fault::Locked,
        Fault::Unauthorized,
        Fault::ServiceUnavailable,
        Fault::Respond {
            status: 400,
            body: json!({"errors": [{"plan": "bad"}]}),
        },
    ] {
        h.fake.inject(FaultRule::once(fault));
    }
    assert_eq!(
        h.get("/instances").await,
        (
            400,
            json!({"error": "Timeout talking to backend", "error_code": 40099})
        )
    );
    assert_eq!(h.get("/instances").await.0, 423);
    let unauthorized = h
        .request(Method::GET, "/instances")
        .send()
        .await
        .expect("an answer");
    assert!(unauthorized.headers().contains_key("www-authenticate"));
    assert_eq!(
        status_and_json(unauthorized).await,
        (401, json!({"error": "Not authorized"}))
    );
    let (status, body) = h.get("/instances").await;
    assert_eq!(status, 503);
    assert!(body.is_string(), "a load balancer page, not JSON: {body}");
    assert_eq!(
        h.get("/instances").await,
        (400, json!({"errors": [{"plan": "bad"}]}))
    );
    h.running.stop().await;
}

#[tokio::test]
async fn unauthorized_once_on_the_first_get_after_an_accepted_put() {
    let h = spawn(|_| {}).await;
    h.fake.unauthorized_once_after_put();
    assert_eq!(
        h.get(&format!("/instances/{ID}")).await.0,
        200,
        "not before the PUT"
    );
    assert_eq!(
        h.put_plan(ID, "no-such-plan").await.0,
        400,
        "a refused PUT does not trigger it"
    );
    assert_eq!(h.get(&format!("/instances/{ID}")).await.0, 200);
    assert_eq!(h.put_plan(ID, "hare-1").await.0, 200);
    assert_eq!(
        h.get(&format!("/instances/{ID}")).await,
        (401, json!({"error": "Not authorized"}))
    );
    assert_eq!(h.get(&format!("/instances/{ID}")).await.0, 200, "once only");
    assert!(
        h.fake.requests().iter().all(|r| r.authorized),
        "the credentials were fine"
    );
    h.running.stop().await;
}

#[tokio::test]
async fn slow_answers_outlast_a_client_timeout_but_still_take_effect() {
    let h = spawn(|_| {}).await;
    let delay = Duration::from_millis(300);
    h.fake
        .inject(FaultRule::once(Fault::Slow(delay)).method("PUT"));
    let error = h
        .request(Method::PUT, &format!("/instances/{ID}"))
        .json(&json!({"plan": "hare-1"}))
        .timeout(Duration::from_millis(100))
        .send()
        .await
        .expect_err("the client gives up first");
    assert!(error.is_timeout(), "{error}");
    // Like a slow production answer: the change went through although the client gave up.
    // The client can time out before the fake's worker has even read the request on a busy
    // machine, so wait for the fake's own record of the answer, within a generous bound.
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.fake.requests().first().is_none_or(|r| r.status == 0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(h.fake.plan_changes(), [(ID, "hare-1".to_owned())]);

    h.fake.inject(FaultRule::once(Fault::Slow(delay)));
    let started = Instant::now();
    assert_eq!(h.get(&format!("/instances/{ID}")).await.0, 200);
    assert!(started.elapsed() >= delay, "{:?}", started.elapsed());
    h.running.stop().await;
}

#[tokio::test]
async fn malformed_body_is_not_json() {
    let h = spawn(|_| {}).await;
    h.fake.inject(FaultRule::once(Fault::MalformedBody));
    let response = h
        .request(Method::GET, "/instances")
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.json::<serde_json::Value>().await.is_err());
    h.running.stop().await;
}

#[tokio::test]
async fn dropped_connection_is_a_transport_error() {
    let h = spawn(|_| {}).await;
    h.fake
        .inject(FaultRule::once(Fault::DropConnection).method("PUT"));
    let error = h
        .request(Method::PUT, &format!("/instances/{ID}"))
        .json(&json!({"plan": "hare-1"}))
        .send()
        .await
        .expect_err("no HTTP answer at all");
    assert!(error.status().is_none() && !error.is_timeout(), "{error:?}");
    assert!(
        h.fake.plan_changes().is_empty(),
        "a dropped PUT changes nothing"
    );
    let record = h.fake.requests().pop().expect("recorded");
    assert_eq!((record.method.as_str(), record.status), ("PUT", 0));
    assert_eq!(
        h.put_plan(ID, "hare-1").await.0,
        200,
        "the fake keeps serving"
    );
    h.running.stop().await;
}
