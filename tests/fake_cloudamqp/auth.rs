//! Production accepts HTTP Basic with an empty user name and the key as password, nothing
//! else, and the request log must never hold the credential.

use reqwest::Method;

use super::support::{KEY, spawn, status_and_json};

#[tokio::test]
async fn basic_with_empty_user_and_the_key_is_accepted() {
    let h = spawn(|_| {}).await;
    let (status, body) = h.get("/instances").await;
    assert_eq!(status, 200, "{body}");
    let log = h.fake.requests();
    assert_eq!(log.len(), 1);
    assert!(log[0].authorized);
    assert_eq!(log[0].auth_scheme.as_deref(), Some("Basic"));
    assert_eq!(log[0].user_agent.as_deref(), Some("fake-tests/1"));
    assert_eq!(log[0].status, 200);
    h.running.stop().await;
}

#[tokio::test]
async fn every_other_credential_gets_401_with_a_basic_challenge() {
    let h = spawn(|_| {}).await;
    let url = h.url("/instances");
    let attempts = [
        ("bearer", h.http.get(&url).bearer_auth(KEY)),
        ("wrong key", h.http.get(&url).basic_auth("", Some("nope"))),
        ("none", h.http.get(&url)),
        ("named user", h.http.get(&url).basic_auth("user", Some(KEY))),
        (
            "key as user",
            h.http.get(&url).basic_auth(KEY, None::<&str>),
        ),
        ("bare key", h.http.get(&url).header("authorization", KEY)),
    ];
    for (what, request) in attempts {
        let response = request.send().await.expect("an answer");
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        let (status, body) = status_and_json(response).await;
        assert_eq!(status, 401, "{what}");
        assert_eq!(
            body,
            serde_json::json!({"error": "Not authorized"}),
            "{what}"
        );
        assert_eq!(
            challenge.as_deref(),
            Some(r#"Basic realm="Customer API""#),
            "{what}"
        );
    }
    let log = h.fake.requests();
    assert_eq!(log.len(), 6, "refused requests are recorded too");
    assert!(log.iter().all(|r| !r.authorized && r.status == 401));
    let schemes: Vec<Option<&str>> = log.iter().map(|r| r.auth_scheme.as_deref()).collect();
    assert_eq!(
        schemes,
        [
            Some("Bearer"),
            Some("Basic"),
            None,
            Some("Basic"),
            Some("Basic"),
            Some("unrecognized")
        ]
    );
    h.running.stop().await;
}

#[tokio::test]
async fn the_request_log_never_holds_the_key() {
    let h = spawn(|_| {}).await;
    let url = h.url("/instances");
    h.http
        .get(&url)
        .bearer_auth(KEY)
        .send()
        .await
        .expect("an answer");
    h.http
        .get(&url)
        .header("authorization", KEY)
        .send()
        .await
        .expect("an answer");
    h.put_plan(super::support::ID, "hare-1").await;
    let printed = format!("{:?}", h.fake.requests());
    assert!(!printed.contains(KEY), "{printed}");
    // Base64 of ":KEY", as a Basic header carries it.
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!(":{KEY}"));
    assert!(!printed.contains(&encoded), "{printed}");
    h.running.stop().await;
}

#[tokio::test]
async fn unauthenticated_requests_learn_nothing_about_paths() {
    let h = spawn(|_| {}).await;
    for path in ["/instances/1", "/nowhere", "/instances/1/actions/upgrade"] {
        let response = h.http.get(h.url(path)).send().await.expect("an answer");
        assert_eq!(response.status().as_u16(), 401, "{path}");
    }
    let response = h
        .http
        .request(Method::PUT, h.url("/instances/359559"))
        .json(&serde_json::json!({"plan": "hare-1"}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status().as_u16(), 401);
    assert!(h.fake.plan_changes().is_empty());
    assert_eq!(h.fake.put_attempts(), 1);
    h.running.stop().await;
}
