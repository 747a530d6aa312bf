//! What the fake remembers of each request, and how it reads credentials and bodies.
//!
//! The record is what tests assert on ("exactly one PUT with plan=hare-3", "every request
//! was authenticated with Basic"), so it keeps everything except the credential itself:
//! a test may print it, and a printed key is a leaked key.

use actix_web::http::header::{self, HeaderMap};
use actix_web::web;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jiff::Timestamp;
use serde_json::{Map, Value};
use subtle::ConstantTimeEq as _;

/// One request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    /// The path without the query string, e.g. `/api/instances/359559`.
    pub path: String,
    pub query: Option<String>,
    /// Whether the credentials were the accepted ones: on the Customer API Basic with an
    /// empty user and the key; on an instance's management API (`/management/…`) Basic with
    /// that instance's own user and password (false for an instance the fake does not hold).
    pub authorized: bool,
    /// The `Authorization` scheme (`Basic`, `Bearer`, …); never the credential. A header
    /// without a recognised scheme is recorded as `unrecognized`, because its first word
    /// might be the key itself.
    pub auth_scheme: Option<String>,
    pub user_agent: Option<String>,
    /// JSON bodies as sent; form bodies as a JSON object of their fields; anything else as
    /// a JSON string. `None` for an empty body.
    pub body: Option<Value>,
    /// The status sent, or 0 when no HTTP answer was sent (a dropped connection).
    pub status: u16,
    /// When it arrived, on the fake's clock.
    pub at: Timestamp,
}

impl RecordedRequest {
    /// The `plan` field of the body, whether it came as JSON or as a form.
    pub fn plan(&self) -> Option<&str> {
        self.body.as_ref()?.get("plan")?.as_str()
    }
}

/// The schemes recorded by name; see [`RecordedRequest::auth_scheme`].
const KNOWN_SCHEMES: &[&str] = &["Basic", "Bearer", "Digest", "Token", "ApiKey", "Negotiate"];

/// The outcome of checking a request's `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub authorized: bool,
    pub scheme: Option<String>,
}

impl Credentials {
    /// Accepts only what production accepts: `Basic base64(":" + key)`.
    pub fn check(headers: &HeaderMap, api_key: &str) -> Self {
        Self::check_basic(headers, Some(("", api_key)))
    }

    /// Accepts only `Basic base64(user + ":" + password)` with exactly the expected pair;
    /// `None` accepts nothing (the scheme is still recorded).
    pub fn check_basic(headers: &HeaderMap, expected: Option<(&str, &str)>) -> Self {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Self {
                authorized: false,
                scheme: None,
            };
        };
        let text = value.to_str().unwrap_or_default().trim();
        let (scheme, token) = text.split_once(' ').unwrap_or((text, ""));
        let recorded = KNOWN_SCHEMES
            .iter()
            .find(|known| known.eq_ignore_ascii_case(scheme))
            .map_or("unrecognized", |known| known);
        let authorized = recorded == "Basic"
            && expected.is_some_and(|(user, password)| basic_matches(token.trim(), user, password));
        Self {
            authorized,
            scheme: Some(recorded.to_owned()),
        }
    }
}

/// Whether a Basic token decodes to exactly `expected_user` and `expected_password`.
fn basic_matches(token: &str, expected_user: &str, expected_password: &str) -> bool {
    let Ok(decoded) = STANDARD.decode(token) else {
        return false;
    };
    let Some(colon) = decoded.iter().position(|&b| b == b':') else {
        return false;
    };
    let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
    // Constant time, as a real server would: timing must not reveal how much of a key
    // matched. Both halves are compared whatever the first gave.
    let user_ok = user.ct_eq(expected_user.as_bytes());
    let password_ok = password.ct_eq(expected_password.as_bytes());
    bool::from(user_ok & password_ok)
}

/// The body as recorded: tolerant, so a test can see what a confused client sent.
pub(crate) fn recorded_body(bytes: &[u8], headers: &HeaderMap) -> Option<Value> {
    if bytes.is_empty() {
        return None;
    }
    if let Ok(json) = serde_json::from_slice(bytes) {
        return Some(json);
    }
    let text = String::from_utf8_lossy(bytes);
    if is_form(headers)
        && let Some(form) = form_fields(&text)
    {
        return Some(form);
    }
    Some(Value::String(text.into_owned()))
}

/// The `plan` a `PUT` asks for, read as production's web framework would: a JSON body only
/// with a JSON content type, a form body only with a form content type. Stricter than the
/// record on purpose, so a client that forgets its `Content-Type` fails here and not in
/// production.
pub(crate) fn requested_plan(bytes: &[u8], headers: &HeaderMap) -> Option<String> {
    let body = if is_json(headers) {
        serde_json::from_slice::<Value>(bytes).ok()?
    } else if is_form(headers) {
        form_fields(std::str::from_utf8(bytes).ok()?)?
    } else {
        return None;
    };
    body.get("plan")?.as_str().map(str::to_owned)
}

/// The fields of a request body, read with the same strictness as [`requested_plan`]: JSON
/// only with a JSON content type, a form only with a form content type (its values are then
/// strings). `None` when there is no object to read.
pub(crate) fn request_fields(bytes: &[u8], headers: &HeaderMap) -> Option<Map<String, Value>> {
    let body = if is_json(headers) {
        serde_json::from_slice::<Value>(bytes).ok()?
    } else if is_form(headers) {
        form_fields(std::str::from_utf8(bytes).ok()?)?
    } else {
        return None;
    };
    match body {
        Value::Object(fields) => Some(fields),
        _ => None,
    }
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn is_json(headers: &HeaderMap) -> bool {
    let kind = content_type(headers);
    kind == "application/json" || kind.ends_with("+json")
}

fn is_form(headers: &HeaderMap) -> bool {
    content_type(headers) == "application/x-www-form-urlencoded"
}

/// A urlencoded form as a JSON object of strings (actix's query parser is serde_urlencoded).
fn form_fields(text: &str) -> Option<Value> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(text).ok()?;
    let fields: Map<String, Value> = pairs
        .into_inner()
        .into_iter()
        .map(|(key, value)| (key, Value::String(value)))
        .collect();
    Some(Value::Object(fields))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn only_basic_with_empty_user_and_the_key_passes() {
        let basic = |creds: &str| format!("Basic {}", STANDARD.encode(creds));
        let check =
            |value: &str| Credentials::check(&headers(&[(header::AUTHORIZATION, value)]), "k");
        assert!(check(&basic(":k")).authorized);
        assert!(!check(&basic("u:k")).authorized);
        assert!(!check(&basic(":kk")).authorized);
        assert!(!check(&basic("k")).authorized);
        assert!(!check("Basic !!!").authorized);
        assert_eq!(check("Bearer k").scheme.as_deref(), Some("Bearer"));
        assert_eq!(check("k").scheme.as_deref(), Some("unrecognized"));
        assert_eq!(Credentials::check(&HeaderMap::new(), "k").scheme, None);
    }

    #[test]
    fn basic_with_a_named_user_needs_both_halves() {
        let check = |creds: &str, expected| {
            let value = format!("Basic {}", STANDARD.encode(creds));
            Credentials::check_basic(&headers(&[(header::AUTHORIZATION, &value)]), expected)
        };
        assert!(check("u:p", Some(("u", "p"))).authorized);
        assert!(!check("u:q", Some(("u", "p"))).authorized);
        assert!(!check("v:p", Some(("u", "p"))).authorized);
        assert!(!check(":p", Some(("u", "p"))).authorized);
        let nobody = check("u:p", None);
        assert!(!nobody.authorized);
        assert_eq!(nobody.scheme.as_deref(), Some("Basic"));
    }

    #[test]
    fn plan_from_json_or_form_with_the_right_content_type() {
        let json = headers(&[(header::CONTENT_TYPE, "application/json; charset=utf-8")]);
        let form = headers(&[(header::CONTENT_TYPE, "application/x-www-form-urlencoded")]);
        let plan = Some("hare-1".to_owned());
        assert_eq!(requested_plan(br#"{"plan":"hare-1"}"#, &json), plan);
        assert_eq!(requested_plan(b"plan=hare-1", &form), plan);
        assert_eq!(
            requested_plan(br#"{"plan":"hare-1"}"#, &HeaderMap::new()),
            None
        );
        assert_eq!(requested_plan(br#"{"plan":3}"#, &json), None);
        assert_eq!(
            recorded_body(b"plan=hare-1", &form),
            Some(serde_json::json!({"plan": "hare-1"}))
        );
    }
}
