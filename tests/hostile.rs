//! Hostile and malformed input: every bad request to the daemon is answered with the
//! documented status and a JSON `{"error": …}` body, nothing is recorded or acted on, the
//! daemon keeps serving, and no secret leaks. Each test ends with [`assert_unharmed`].
//!
//! Run: `cargo test --test hostile`. The request classes and their answers are listed in
//! RELIABILITY.md, "Hostile and malformed requests".

#[path = "state_query/mod.rs"]
mod state_query;
#[path = "daemon_support/mod.rs"]
mod support;

#[path = "process_support/mod.rs"]
mod process_support;

#[path = "hostile/bodies.rs"]
mod bodies;
#[path = "hostile/process.rs"]
mod process;
#[path = "hostile/routes.rs"]
mod routes;
#[path = "hostile/tokens.rs"]
mod tokens;
#[path = "hostile/transport.rs"]
mod transport;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::{KEY, MEMORY_85, Spawn, TOKEN, TestApp, spawn_app};

/// An alarm that is accepted and recorded but can never change a plan: it names no
/// instance, and there is no default one. Used where a request must be *accepted*
/// without making a PUT possible.
pub(crate) const HARMLESS: &str = r#"{"alarm_type":"notice","message":"hostile suite probe"}"#;

/// A live daemon (so a PUT is possible at all) against the fake CloudAMQP.
pub(crate) async fn app() -> TestApp {
    spawn_app(Spawn::default()).await
}

pub(crate) fn alarm_url(app: &TestApp) -> String {
    format!("{}/cloudamqp/alarm?token={TOKEN}", app.base)
}

/// Posts `body` (any bytes) with the right token.
pub(crate) async fn post(app: &TestApp, body: impl Into<reqwest::Body>) -> reqwest::Response {
    app.http
        .post(alarm_url(app))
        .body(body)
        .send()
        .await
        .unwrap()
}

pub(crate) fn count(app: &TestApp, sql: &str) -> i64 {
    app.query(sql)[0][0].as_i64().unwrap()
}

pub(crate) fn alarms(app: &TestApp) -> i64 {
    count(app, "SELECT count(*) FROM alarms")
}

/// Asserts the answer is `status` with a JSON body of exactly one non-empty string field
/// `error` that echoes no secret; returns the message.
pub(crate) async fn refused(response: reqwest::Response, status: StatusCode, case: &str) -> String {
    assert_eq!(response.status(), status, "{case}");
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "{case}: content type {content_type:?}"
    );
    let text = response.text().await.unwrap();
    json_error(&text, case)
}

/// The message of a `{"error": "…"}` body (and nothing else in it).
pub(crate) fn json_error(text: &str, case: &str) -> String {
    let body: Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{case}: {e}: {text:?}"));
    let fields = body.as_object().unwrap_or_else(|| panic!("{case}: {text}"));
    assert_eq!(fields.len(), 1, "{case}: {text}");
    let message = fields["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{case}: {text}"));
    assert!(!message.is_empty(), "{case}");
    for secret in [KEY, TOKEN] {
        assert!(
            !message.contains(secret),
            "{case}: the answer echoes a secret"
        );
    }
    message.to_owned()
}

/// Asserts that refused requests left no trace: no alarm recorded beyond `before`, and no
/// plan change reached the fake CloudAMQP.
pub(crate) fn assert_nothing_recorded(app: &TestApp, before: i64, case: &str) {
    assert_eq!(alarms(app), before, "{case}: an alarm was recorded");
    assert!(app.puts().is_empty(), "{case}: a PUT reached CloudAMQP");
}

/// After a barrage: the daemon is alive and ready, still does its job (a valid alarm is
/// accepted, decided and makes exactly the one plan change), every recorded alarm got a
/// decision, and neither the API key, nor the webhook token, nor an instance credential
/// is in `/status`, `/metrics` or the state store.
pub(crate) async fn assert_unharmed(app: &TestApp) {
    assert!(app.puts().is_empty(), "a refused request reached CloudAMQP");
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    let response = app.alarm(MEMORY_85).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let accepted: Value = response.json().await.unwrap();
    assert!(accepted["alarm_id"].is_string(), "{accepted}");
    let instance = app.wait_for_result(Duration::from_secs(20)).await;
    assert_eq!(instance["last_change"]["result"], "completed", "{instance}");
    assert_eq!(app.puts().len(), 1, "only the valid alarm acted");
    wait_all_decided(app).await;
    assert_eq!(
        count(app, "SELECT count(*) FROM decisions"),
        alarms(app),
        "one decision per recorded alarm, none for a refused request"
    );
    let mut everything = format!("{}\n{}\n", app.status().await, app.metrics().await);
    for table in ["alarms", "decisions", "changes", "instances"] {
        for row in app.query(&format!("SELECT * FROM {table}")) {
            everything.push_str(&format!("{row:?}\n"));
        }
    }
    for secret in [KEY, TOKEN, cloudamqp_autoscaler::fake::SECRET_MARKER] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked:\n{everything}"
        );
    }
}

/// Waits until every recorded alarm is decided (decisions are written after the 202).
pub(crate) async fn wait_all_decided(app: &TestApp) {
    let started = Instant::now();
    while count(app, "SELECT count(*) FROM alarms WHERE decided_at IS NULL") > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "alarms left undecided"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A client whose connections come from `address` (any 127.0.0.0/8 address is local).
pub(crate) fn client_from(address: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(address.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

/// An HTTP/1.1 answer read off a raw socket.
#[derive(Debug)]
pub(crate) struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    }

    /// Asserts `status` and a JSON `{"error": …}` body; returns the message.
    pub fn refused(&self, status: u16, case: &str) -> String {
        assert_eq!(self.status, status, "{case}: {self:?}");
        json_error(&String::from_utf8_lossy(&self.body), case)
    }
}

pub(crate) fn socket_addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// Sends `request` as is on a new connection and reads one answer; `None` when the server
/// closed the connection without answering.
pub(crate) async fn raw(app: &TestApp, request: &[u8]) -> Option<RawResponse> {
    let mut stream = TcpStream::connect(socket_addr(app)).await.unwrap();
    // The server may answer and close before it has read everything we send.
    let _ = stream.write_all(request).await;
    read_response(&mut stream).await
}

/// Reads one answer (head, then a `Content-Length` body) within 30 s.
pub(crate) async fn read_response(stream: &mut TcpStream) -> Option<RawResponse> {
    let read = async {
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 8192];
        let head_end = loop {
            if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
        let status = head.split(' ').nth(1)?.parse().ok()?;
        let mut response = RawResponse {
            status,
            head,
            body: buffer[head_end..].to_vec(),
        };
        let length: usize = response
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while response.body.len() < length {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => response.body.extend_from_slice(&chunk[..n]),
            }
        }
        response.body.truncate(length);
        Some(response)
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("the server neither answered nor closed the connection within 30 s")
}

/// A POST head for the webhook with the right token and `extra` header lines.
pub(crate) fn post_head(extra: &str) -> String {
    format!(
        "POST /cloudamqp/alarm?token={TOKEN} HTTP/1.1\r\nHost: localhost\r\n{extra}Connection: close\r\n\r\n"
    )
}
