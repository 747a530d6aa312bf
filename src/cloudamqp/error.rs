//! What can go wrong talking to CloudAMQP, classified the way callers must react.
//!
//! The classes follow cloudamqp-api.md "Errors and retries": transient failures are retried
//! inside a deadline, everything else is returned at once. Every message that came from the
//! API or from the HTTP stack passes through [`sanitize`] first, so an error can be logged,
//! shown in `/status` or recorded without leaking a credential.

use std::time::Duration;

use jiff::Timestamp;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// The longest API message we keep; a whole HTML error page is of no use in a log line.
pub const MAX_MESSAGE_CHARS: usize = 300;

/// CloudAMQP's error code for "Timeout talking to backend", the one retryable 400.
const BACKEND_TIMEOUT_CODE: i64 = 40099;

/// A failed CloudAMQP API call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 401/403: the key is wrong or lacks the right. Not retried (while polling a change
    /// the tracker tolerates a few: production once answered 401 right after a PUT).
    #[error("CloudAMQP refused the API key (check cloudamqp.api_key or CLOUDAMQP_API_KEY)")]
    Unauthorized,
    /// 404: unknown instance id (or path).
    #[error("CloudAMQP does not know it: {message}")]
    NotFound { message: String },
    /// 422 "Please wait…": a change is already running on the instance.
    #[error("the instance is busy being reconfigured: {message}")]
    InstanceBusy { message: String },
    /// Any other 422: CloudAMQP refuses this plan change.
    #[error("CloudAMQP refused the plan change: {message}")]
    MoveRefused { message: String },
    /// 429. Retried with backoff, honouring `Retry-After`.
    #[error("rate limited by CloudAMQP{}", retry_after_text(*.retry_after))]
    RateLimited { retry_after: Option<Duration> },
    /// Worth retrying: 502/503/504, 423 locked, 400 "Timeout talking to backend", connection
    /// failures and timeouts.
    #[error("temporary failure: {what}")]
    Transient { what: String },
    /// Any other 400: the request itself is wrong; retrying cannot help.
    #[error("CloudAMQP rejected the request: {message}")]
    BadRequest { message: String },
    /// A success status with a body we cannot read.
    #[error("unreadable answer from CloudAMQP: {what}")]
    Malformed { what: String },
    /// A status no other class covers (500, 405, 409, a redirect, …).
    #[error("unexpected HTTP {status} from CloudAMQP: {message}")]
    Unexpected { status: u16, message: String },
    /// No API key configured.
    #[error("no CloudAMQP API key: set cloudamqp.api_key or CLOUDAMQP_API_KEY")]
    MissingApiKey,
    /// The HTTP client could not be built from the settings.
    #[error("cannot set up the CloudAMQP client: {what}")]
    Setup { what: String },
    /// Not sent: this replica no longer holds the change (or cannot make sure it holds it
    /// for the whole request), so it must not send it.
    #[error("not sent: {why}")]
    NotHeld { why: String },
    /// Transient failures went on until `cloudamqp.retry_deadline`; `last` is the final one.
    #[error("gave up after {attempts} attempts within cloudamqp.retry_deadline: {last}")]
    DeadlineExceeded { attempts: u32, last: Box<ApiError> },
    /// A plan change refused by every attempt (423, 503, 429, no connection) until the
    /// deadline (the `DeadlineExceeded` inside): none of them can have started it.
    #[error("CloudAMQP refused every attempt of the plan change: {0}")]
    ChangeRefused(Box<ApiError>),
}

fn retry_after_text(retry_after: Option<Duration>) -> String {
    retry_after
        .map(|d| format!(" (retry after {})", crate::duration::display(d)))
        .unwrap_or_default()
}

impl ApiError {
    /// Whether trying again later may succeed.
    ///
    /// `DeadlineExceeded` counts as transient: its cause was, and only our patience ran out.
    /// The retry loop itself never sees it, so this cannot cause retries of retries.
    /// `ChangeRefused` is final: the PUT was refused every time it was tried.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::RateLimited { .. } | Self::Transient { .. } => true,
            Self::DeadlineExceeded { last, .. } => last.is_transient(),
            _ => false,
        }
    }

    /// The innermost error: the cause of a `DeadlineExceeded`, else itself.
    pub fn root(&self) -> &ApiError {
        match self {
            Self::DeadlineExceeded { last, .. } => last.root(),
            other => other,
        }
    }
}

/// Classifies a non-success answer. `now` dates an HTTP-date `Retry-After`; `secret` is
/// scrubbed from any message in case the server echoed it.
pub(crate) fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    now: Timestamp,
    secret: &str,
) -> ApiError {
    let parsed = ErrorBody::parse(body);
    let message = sanitize(&parsed.message(status), secret);
    match status.as_u16() {
        401 | 403 => ApiError::Unauthorized,
        404 => ApiError::NotFound { message },
        422 if parsed.text.to_ascii_lowercase().contains("please wait") => {
            ApiError::InstanceBusy { message }
        }
        422 => ApiError::MoveRefused { message },
        429 => ApiError::RateLimited {
            retry_after: retry_after(headers, now),
        },
        400 if parsed.code == Some(BACKEND_TIMEOUT_CODE)
            || parsed
                .text
                .to_ascii_lowercase()
                .contains("timeout talking to backend") =>
        {
            ApiError::Transient {
                what: format!("HTTP 400 {message}"),
            }
        }
        400 => ApiError::BadRequest { message },
        423 | 502 | 503 | 504 => ApiError::Transient {
            what: format!("HTTP {} {message}", status.as_u16()),
        },
        other => ApiError::Unexpected {
            status: other,
            message,
        },
    }
}

/// The parts of an error body CloudAMQP may send: `error`, `errors`, `message`,
/// `error_code`, in any combination; or something that is not JSON at all.
#[derive(Debug, Default)]
struct ErrorBody {
    /// Every human text found, joined.
    text: String,
    code: Option<i64>,
}

impl ErrorBody {
    fn parse(body: &[u8]) -> Self {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
            let text = String::from_utf8_lossy(body).trim().to_owned();
            // An HTML error page (a load balancer's 503) says nothing the status does not.
            let text = if text.starts_with('<') {
                String::new()
            } else {
                text
            };
            return Self { text, code: None };
        };
        let mut texts = Vec::new();
        if let Some(object) = value.as_object() {
            for key in ["error", "message"] {
                if let Some(v) = object.get(key) {
                    collect_text(v, &mut texts);
                }
            }
            if let Some(v) = object.get("errors") {
                collect_text(v, &mut texts);
            }
            let code = object.get("error_code").and_then(|c| match c {
                serde_json::Value::Number(n) => n.as_i64(),
                serde_json::Value::String(s) => s.trim().parse().ok(),
                _ => None,
            });
            return Self {
                text: texts.join("; "),
                code,
            };
        }
        collect_text(&value, &mut texts);
        Self {
            text: texts.join("; "),
            code: None,
        }
    }

    fn message(&self, status: StatusCode) -> String {
        let mut message = if self.text.is_empty() {
            status.canonical_reason().unwrap_or("no message").to_owned()
        } else {
            self.text.clone()
        };
        if let Some(code) = self.code {
            message.push_str(&format!(" (error_code {code})"));
        }
        message
    }
}

/// Gathers strings from a string, an array of strings/objects, or an object's usual
/// message fields.
fn collect_text(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) if !s.trim().is_empty() => out.push(s.trim().to_owned()),
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_text(v, out)),
        serde_json::Value::Object(object) => {
            let before = out.len();
            for key in ["message", "error", "detail", "title"] {
                if let Some(v) = object.get(key) {
                    collect_text(v, out);
                }
            }
            if out.len() == before && !object.is_empty() {
                // An object with no known text field: its compact JSON says more than nothing.
                out.push(value.to_string());
            }
        }
        serde_json::Value::Number(n) => out.push(n.to_string()),
        _ => {}
    }
}

/// `Retry-After` as delay-seconds or an HTTP-date.
pub(crate) fn retry_after(headers: &HeaderMap, now: Timestamp) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    static PARSER: jiff::fmt::rfc2822::DateTimeParser = jiff::fmt::rfc2822::DateTimeParser::new();
    let at = PARSER.parse_timestamp(text).ok()?;
    Some(crate::clock::between(now, at))
}

/// Makes a text from outside safe and small enough to log: removes `secret` wherever it
/// occurs, masks the user-info part of URLs (`amqps://user:pass@host` → `amqps://***@host`),
/// drops control characters and bounds the length.
pub fn sanitize(text: &str, secret: &str) -> String {
    let mut text = if secret.is_empty() {
        text.to_owned()
    } else {
        text.replace(secret, "***")
    };
    text = mask_userinfo(&text);
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_MESSAGE_CHARS)
        .collect();
    if text.chars().count() > MAX_MESSAGE_CHARS {
        out.push('…');
    }
    out
}

/// Replaces every `scheme://userinfo@` with `scheme://***@`.
fn mask_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        // The authority ends at the first '/', '?', '#', quote or whitespace.
        let end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#' | '"' | '\'') || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str("***");
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn now() -> Timestamp {
        "2026-11-26T17:00:00Z".parse().unwrap()
    }

    fn class(status: u16, body: &str) -> ApiError {
        classify(
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
            body.as_bytes(),
            now(),
            "KEY",
        )
    }

    #[test]
    fn statuses_and_bodies_map_to_classes() {
        assert_eq!(
            class(401, r#"{"error":"Not authorized"}"#),
            ApiError::Unauthorized
        );
        assert!(
            matches!(class(404, r#"{"error":"Invalid ID"}"#), ApiError::NotFound { message } if message == "Invalid ID")
        );
        assert!(matches!(
            class(
                422,
                r#"{"error":"Please wait for your cluster to be configured before trying to update it"}"#
            ),
            ApiError::InstanceBusy { .. }
        ));
        assert!(matches!(
            class(422, r#"{"error":"Sorry, you can't move to a shared plan automatically. Please create a new instance."}"#),
            ApiError::MoveRefused { message } if message.starts_with("Sorry")
        ));
        assert!(class(400, r#"{"error":"Timeout talking to backend"}"#).is_transient());
        assert!(class(400, r#"{"error":"x","error_code":40099}"#).is_transient());
        assert!(
            matches!(class(400, r#"{"errors":[{"message":"plan invalid"},"and more"],"error_code":3}"#),
            ApiError::BadRequest { message } if message == "plan invalid; and more (error_code 3)")
        );
        assert!(class(423, r#"{"message":"Instance is locked"}"#).is_transient());
        assert!(class(503, "").is_transient());
        assert_eq!(
            class(503, "<html><h1>503</h1></html>"),
            ApiError::Transient {
                what: "HTTP 503 Service Unavailable".into()
            }
        );
        assert!(
            matches!(class(409, "plain words"), ApiError::Unexpected { status: 409, message } if message == "plain words")
        );
        assert!(matches!(
            class(500, "<html>"),
            ApiError::Unexpected { status: 500, .. }
        ));
    }

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers, now()), Some(Duration::from_secs(7)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Thu, 26 Nov 2026 17:00:30 GMT"),
        );
        assert_eq!(retry_after(&headers, now()), Some(Duration::from_secs(30)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers, now()), None);
    }

    #[test]
    fn sanitize_masks_secrets_credentials_and_length() {
        let text = "KEY leaked in amqps://user:pass@host/vhost and http://h/p\n";
        assert_eq!(
            sanitize(text, "KEY"),
            "*** leaked in amqps://***@host/vhost and http://h/p "
        );
        let long = "x".repeat(1000);
        assert_eq!(sanitize(&long, "").chars().count(), MAX_MESSAGE_CHARS + 1);
    }

    #[test]
    fn messages_from_the_api_are_sanitised() {
        let err = class(400, r#"{"error":"bad KEY for amqps://u:secretpw@h"}"#);
        let text = err.to_string();
        assert!(
            !text.contains("KEY") && !text.contains("secretpw"),
            "{text}"
        );
    }

    #[test]
    fn deadline_exceeded_is_transient_when_its_cause_is() {
        let err = ApiError::DeadlineExceeded {
            attempts: 3,
            last: Box::new(ApiError::Transient { what: "503".into() }),
        };
        assert!(err.is_transient());
        assert_eq!(err.root(), &ApiError::Transient { what: "503".into() });
    }
}
