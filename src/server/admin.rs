//! The admin API: `POST /pause`, `DELETE /pause/{pause_id}`, `GET /pauses`, and who may
//! read `/status` and `/pauses` off loopback.
//!
//! A pause is written to the store first and answered only once it is on disk, then put
//! in the executor's book, which every decision consults: a `201` survives a crash, and a
//! pause the store could not keep is never in force.

use std::net::SocketAddr;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::errors::{error, retry_later, truncate};
use super::webhook::read_body;
use crate::decide::Directions;
use crate::guard::Pause;
use crate::rules::Selector;
use crate::store::PauseRow;

/// The longest `reason` a pause may carry, in characters.
pub const MAX_REASON_CHARS: usize = 500;
/// The most selectors one pause may name ...
pub const MAX_SELECTORS: usize = 100;
/// ... and the longest each may be, in characters.
pub const MAX_SELECTOR_CHARS: usize = 200;
/// How long a client is asked to wait when the pause cannot be recorded.
const STORE_FAILED_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Whether `/status` and `/pauses` need the admin token: on a bind other than loopback,
/// when one is set. Without one they stay public there (`serve` warns at start).
pub fn reads_need_token(bind: SocketAddr, admin_token_set: bool) -> bool {
    admin_token_set && !bind.ip().is_loopback()
}

/// The answer to an admin request that may not pass (`None`: it may): 403 without
/// `server.admin_token`, 401 for a missing or wrong token, 429 once the address keeps
/// sending wrong ones.
fn admin_refusal(request: &HttpRequest, state: &AppState) -> Option<HttpResponse> {
    let Some(check) = &state.admin else {
        return Some(error(
            StatusCode::FORBIDDEN,
            "the admin API is off: server.admin_token is not set (AUTOSCALER__SERVER__ADMIN_TOKEN)",
        ));
    };
    if check.admits_header(request, false) {
        return None;
    }
    Some(refused(
        request,
        state,
        "admin API",
        "missing or wrong admin token: send server.admin_token as an Authorization: Bearer header",
        "Bearer",
    ))
}

/// The answer to a read (`/status`, `/pauses`) that may not pass (`None`: it may): 401
/// (429 when throttled) when it needs the admin token and does not carry it as Bearer or
/// as a Basic password.
pub(super) fn read_refusal(request: &HttpRequest, state: &AppState) -> Option<HttpResponse> {
    match &state.admin {
        Some(check) if state.reads_need_token && !check.admits_header(request, true) => {
            Some(refused(
                request,
                state,
                "reads",
                "missing or wrong admin token: off loopback this page needs server.admin_token, \
                 as an Authorization: Bearer header or as the password of HTTP Basic",
                "Basic realm=\"cloudamqp-autoscaler\"",
            ))
        }
        _ => None,
    }
}

/// 401 with `WWW-Authenticate: challenge`, or 429 once the address is throttled (the
/// webhook's throttle, with a budget of its own).
fn refused(
    request: &HttpRequest,
    state: &AppState,
    what: &str,
    message: &str,
    challenge: &'static str,
) -> HttpResponse {
    let address = request.peer_addr().map(|a| a.ip());
    if let Some(wait) = state.admin_throttle.refuse(address, what) {
        return retry_later(
            StatusCode::TOO_MANY_REQUESTS,
            wait,
            "too many requests with a wrong admin token; try again later",
        );
    }
    tracing::warn!(address = ?address, "{what}: missing or wrong admin token");
    let mut response = error(StatusCode::UNAUTHORIZED, message);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

/// `POST /pause`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PauseRequest {
    #[serde(rename = "for")]
    for_: Option<String>,
    until: Option<String>,
    direction: Option<String>,
    instances: Option<Vec<String>>,
    reason: Option<String>,
}

/// A valid pause request: what it holds, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PauseSpec {
    pub until: Timestamp,
    pub directions: Directions,
    pub instances: Vec<String>,
    pub reason: Option<String>,
}

/// Reads and checks a `POST /pause` body at `now`; the error is the 400's message.
pub fn parse_request(body: &[u8], now: Timestamp) -> Result<PauseSpec, String> {
    let request: PauseRequest =
        serde_json::from_slice(body).map_err(|e| format!("invalid pause request: {e}"))?;
    let until = match (request.for_, request.until) {
        (Some(_), Some(_)) => {
            return Err(r#"give either "for" or "until", not both"#.into());
        }
        (None, None) => {
            return Err(
                r#"give "for" (a duration such as "2h") or "until" (an RFC 3339 time)"#.into(),
            );
        }
        (Some(length), None) => {
            let length = crate::duration::parse(&length)
                .map_err(|e| format!(r#""for" must be a positive duration: {e}"#))?;
            if length.is_zero() {
                return Err(r#""for" must be a positive duration, not zero"#.into());
            }
            crate::clock::add(now, length)
        }
        (None, Some(text)) => {
            let until: Timestamp = text.trim().parse().map_err(|_| {
                format!(
                    r#""until" {:?} is not an RFC 3339 time such as "2026-11-26T19:00:00Z""#,
                    truncate(&text, 100)
                )
            })?;
            if until <= now {
                return Err(format!(
                    r#""until" {until} is not in the future (now {now})"#
                ));
            }
            until
        }
    };
    let directions = match request.direction.as_deref() {
        None => Directions::BOTH,
        Some(name) => Directions::from_name(name).ok_or_else(|| {
            format!(
                r#""direction" must be "up", "down" or "both", not {:?}"#,
                truncate(name, 100)
            )
        })?,
    };
    let instances = request.instances.unwrap_or_default();
    if instances.len() > MAX_SELECTORS {
        return Err(format!(
            r#""instances" names {} selectors; at most {MAX_SELECTORS}"#,
            instances.len()
        ));
    }
    let instances = instances
        .into_iter()
        .map(|selector| {
            let selector = selector.trim().to_owned();
            if selector.is_empty() {
                Err(r#""instances" entries must be non-empty strings"#.to_owned())
            } else if selector.chars().count() > MAX_SELECTOR_CHARS {
                Err(format!(
                    r#""instances" entries are at most {MAX_SELECTOR_CHARS} characters"#
                ))
            } else {
                Ok(selector)
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let reason = request
        .reason
        .map(|reason| reason.trim().to_owned())
        .filter(|reason| !reason.is_empty());
    if reason
        .as_ref()
        .is_some_and(|reason| reason.chars().count() > MAX_REASON_CHARS)
    {
        return Err(format!(r#""reason" is over {MAX_REASON_CHARS} characters"#));
    }
    Ok(PauseSpec {
        until,
        directions,
        instances,
        reason,
    })
}

/// The executor's pause from its stored row.
pub fn pause_from_row(row: PauseRow) -> Pause {
    Pause {
        selectors: row
            .instances
            .iter()
            .map(|text| Selector::new(text))
            .collect(),
        id: row.id,
        until: row.until,
        directions: row.directions,
        instances: row.instances,
        reason: row.reason,
        created_at: row.created_at,
    }
}

/// One pause as `/pauses` and `/status` show it.
pub fn pause_json(pause: &Pause) -> Value {
    json!({
        "pause_id": pause.id,
        "until": pause.until,
        "direction": pause.directions.as_str(),
        "instances": pause.instances,
        "reason": pause.reason,
    })
}

/// The pauses in force at the state's now, soonest to end first.
pub fn pauses_json(state: &AppState) -> Value {
    let pauses = state.executor.pauses().in_force(state.clock.now());
    state.metrics.pauses(pauses.len());
    Value::Array(pauses.iter().map(pause_json).collect())
}

fn log_pause(message: &str, pause: &Pause) {
    tracing::info!(
        pause_id = %pause.id,
        until = %pause.until,
        direction = pause.directions.as_str(),
        instances = %if pause.instances.is_empty() { "*".to_owned() } else { pause.instances.join(", ") },
        reason = pause.reason.as_deref().unwrap_or(""),
        "{message}"
    );
}

/// `POST /pause`.
pub async fn create(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    if let Some(response) = admin_refusal(&request, &state) {
        return response;
    }
    let body = match read_body(&request, payload).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let now = state.clock.now();
    let spec = match parse_request(&body, now) {
        Ok(spec) => spec,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let row = PauseRow {
        id: uuid::Uuid::new_v4().to_string(),
        created_at: now,
        until: spec.until,
        directions: spec.directions,
        instances: spec.instances,
        reason: spec.reason,
    };
    if let Err(e) = state.store.add_pause(row.clone()).await {
        tracing::error!(error = %e, "admin API: cannot record the pause; answering 503");
        state.metrics.store_healthy(false);
        return retry_later(
            StatusCode::SERVICE_UNAVAILABLE,
            STORE_FAILED_RETRY_AFTER,
            "the pause could not be recorded; try again later",
        );
    }
    state.metrics.store_healthy(true);
    let pause = pause_from_row(row);
    log_pause("pause created", &pause);
    let answer = json!({ "pause_id": pause.id, "until": pause.until });
    state.executor.pauses().add(pause);
    state
        .metrics
        .pauses(state.executor.pauses().in_force(now).len());
    HttpResponse::Created().json(answer)
}

/// `DELETE /pause/{pause_id}`: 204 once the end is on disk; 404 for a pause not in force
/// (unknown, ended or expired).
pub async fn end(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    if let Some(response) = admin_refusal(&request, &state) {
        return response;
    }
    let id = path.into_inner();
    let now = state.clock.now();
    let not_found = || {
        error(
            StatusCode::NOT_FOUND,
            format!("no pause {:?} is in force", truncate(&id, 100)),
        )
    };
    let Some(pause) = state
        .executor
        .pauses()
        .in_force(now)
        .into_iter()
        .find(|p| p.id == id)
    else {
        return not_found();
    };
    match state.store.end_pause(id.clone(), now).await {
        Ok(true) => {}
        // Ended meanwhile by a concurrent request.
        Ok(false) => return not_found(),
        Err(e) => {
            tracing::error!(error = %e, "admin API: cannot record the end of a pause; answering 503");
            state.metrics.store_healthy(false);
            return retry_later(
                StatusCode::SERVICE_UNAVAILABLE,
                STORE_FAILED_RETRY_AFTER,
                "the end of the pause could not be recorded; try again later",
            );
        }
    }
    state.metrics.store_healthy(true);
    state.executor.pauses().remove(&id);
    log_pause("pause ended", &pause);
    state
        .metrics
        .pauses(state.executor.pauses().in_force(now).len());
    HttpResponse::NoContent().finish()
}

/// `GET /pauses`.
pub async fn list(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Some(response) = read_refusal(&request, &state) {
        return response;
    }
    HttpResponse::Ok().json(json!({ "pauses": pauses_json(&state) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-11-26T17:00:00Z".parse().unwrap()
    }

    fn parse(body: &str) -> Result<PauseSpec, String> {
        parse_request(body.as_bytes(), now())
    }

    #[test]
    fn reads_need_the_token_off_loopback_only_and_only_when_one_is_set() {
        let at = |addr: &str| addr.parse::<SocketAddr>().unwrap();
        assert!(reads_need_token(at("0.0.0.0:8080"), true));
        assert!(reads_need_token(at("10.1.2.3:8080"), true));
        assert!(reads_need_token(at("[::]:8080"), true));
        assert!(!reads_need_token(at("0.0.0.0:8080"), false));
        assert!(!reads_need_token(at("127.0.0.1:8080"), true));
        assert!(!reads_need_token(at("[::1]:8080"), true));
    }

    #[test]
    fn a_pause_for_a_while_or_until_a_time() {
        let spec = parse(r#"{"for": "2h"}"#).unwrap();
        assert_eq!(spec.until, "2026-11-26T19:00:00Z".parse().unwrap());
        assert_eq!(spec.directions, Directions::BOTH);
        assert!(spec.instances.is_empty() && spec.reason.is_none());
        let spec = parse(
            r#"{"until": "2026-11-26T20:00:00+01:00", "direction": "down",
                "instances": ["prod-*", " 359559 "], "reason": " release "}"#,
        )
        .unwrap();
        assert_eq!(spec.until, "2026-11-26T19:00:00Z".parse().unwrap());
        assert_eq!(spec.directions.as_str(), "down");
        assert_eq!(spec.instances, ["prod-*", "359559"]);
        assert_eq!(spec.reason.as_deref(), Some("release"));
    }

    #[test]
    fn every_bad_request_is_refused_with_a_clear_message() {
        for (body, expected) in [
            (
                r#"{"for": "2h", "until": "2026-11-27T00:00:00Z"}"#,
                "not both",
            ),
            (r#"{}"#, r#"give "for""#),
            (r#"{"for": "0s"}"#, "positive"),
            (r#"{"for": "-2h"}"#, "positive"),
            (r#"{"for": "soon"}"#, "positive"),
            (r#"{"until": "2026-11-26T17:00:00Z"}"#, "not in the future"),
            (r#"{"until": "2026-11-26T16:00:00Z"}"#, "not in the future"),
            (r#"{"until": "tomorrow"}"#, "not an RFC 3339 time"),
            (
                r#"{"for": "2h", "direction": "sideways"}"#,
                r#""direction" must be"#,
            ),
            (r#"{"for": "2h", "instances": [""]}"#, "non-empty"),
            (
                r#"{"for": "2h", "instances": "prod"}"#,
                "invalid pause request",
            ),
            (r#"{"for": "2h", "paws": 1}"#, "unknown field `paws`"),
            (r#"{"for": 7200}"#, "invalid pause request"),
            ("{", "invalid pause request"),
            ("", "invalid pause request"),
            ("[]", "invalid pause request"),
        ] {
            let err = parse(body).unwrap_err();
            assert!(err.contains(expected), "{body}: {err}");
        }
        let long = format!(r#"{{"for": "2h", "reason": "{}"}}"#, "x".repeat(501));
        assert!(parse(&long).unwrap_err().contains("over 500"));
        let fine = format!(r#"{{"for": "2h", "reason": "{}"}}"#, "x".repeat(500));
        assert!(parse(&fine).is_ok());
    }
}
