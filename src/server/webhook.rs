//! `POST /cloudamqp/alarm`: authenticate, read, parse, record durably, enqueue, answer.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use tokio::sync::mpsc::Permit;
use tokio::sync::mpsc::error::TrySendError;

use super::errors::{error, retry_later};
use super::{AppState, MAX_BODY_BYTES, REQUEST_BODY_TIMEOUT};
use crate::executor::{Job, QuickDecision};
use crate::store::NewAlarm;
use crate::{alarm, redact};

/// How long a sender is asked to wait when the queue is full.
const OVERLOADED_RETRY_AFTER: Duration = Duration::from_secs(5);
/// How long a sender is asked to wait when the alarm cannot be recorded.
const STORE_FAILED_RETRY_AFTER: Duration = Duration::from_secs(30);

pub async fn receive(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let address = request.peer_addr().map(|a| a.ip());
    // The right token always gets in, even from a throttled address: behind a reverse proxy
    // every sender shares the proxy's address, and a guesser must not shut CloudAMQP out.
    // What the throttle holds back is the wrong tokens.
    if let Some(check) = &state.token
        && !check.admits(&request)
    {
        if let Some(wait) = state.throttle.refuse(address, "webhook") {
            state.metrics.alarm_received("", "throttled");
            return retry_later(
                StatusCode::TOO_MANY_REQUESTS,
                wait,
                "too many requests with a wrong token; try again later",
            );
        }
        tracing::warn!(address = ?address, "webhook: missing or wrong token");
        state.metrics.alarm_received("", "unauthorized");
        return error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong token: put the webhook token in ?token= or an Authorization: Bearer header",
        );
    }
    let body = match read_body(&request, payload).await {
        Ok(body) => body,
        Err(response) => {
            state.metrics.alarm_received("", "refused");
            return response;
        }
    };
    // The parser has already redacted the free text it keeps (type, message, triggered_at).
    let (alarm, json) = match alarm::parse_with_json(&body) {
        Ok(parsed) => parsed,
        Err(e) => {
            state.metrics.alarm_received("", "invalid");
            return error(StatusCode::BAD_REQUEST, format!("invalid alarm: {e}"));
        }
    };
    // Decided on arrival when our own state settles it (recorded with the alarm, in one
    // transaction); else a place in the queue first: an alarm we could not hand on must
    // not be acknowledged.
    // Taken first, so that a decision on arrival is never older than its alarm.
    let received_at = state.clock.now();
    let mut next = match state.executor.decide_now(&alarm) {
        Some(quick) => Next::Decided(quick),
        None => match state.queue.try_reserve() {
            Ok(slot) => Next::Queue(slot),
            Err(full_or_closed) => {
                state.metrics.alarm_received(&alarm.kind, "overloaded");
                let why = match full_or_closed {
                    TrySendError::Full(()) => "overloaded: too many alarms waiting for a decision",
                    TrySendError::Closed(()) => "shutting down",
                };
                return retry_later(StatusCode::SERVICE_UNAVAILABLE, OVERLOADED_RETRY_AFTER, why);
            }
        },
    };
    let record = NewAlarm {
        received_at,
        remote_addr: address.map(|a| a.to_string()),
        // Journaled for audit, with anything that looks like a credential redacted.
        body: redact::redact_json(json),
        kind: alarm.kind.clone(),
        value: alarm.value,
        instance: alarm.instance.map(|i| i.to_string()),
        resolved: alarm.resolved,
        message: alarm.message.clone(),
        triggered_at: alarm.triggered_at.clone(),
    };
    let written = match &mut next {
        Next::Decided(quick) => {
            let notes = quick.take_notes();
            state
                .store
                .with_notes(notes)
                .record_decided_alarm(record, quick.row())
                .await
        }
        Next::Queue(_) => state.store.record_alarm(record).await,
    };
    let alarm_id = match written {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(error = %e, "webhook: cannot record the alarm; answering 503");
            state.metrics.alarm_received(&alarm.kind, "store_failed");
            state.metrics.store_healthy(false);
            return retry_later(
                StatusCode::SERVICE_UNAVAILABLE,
                STORE_FAILED_RETRY_AFTER,
                "the alarm could not be recorded; try again later",
            );
        }
    };
    tracing::debug!(alarm_id, alarm = %alarm.kind, "alarm recorded");
    state.metrics.alarm_received(&alarm.kind, "accepted");
    state.metrics.store_healthy(true);
    match next {
        Next::Decided(quick) => state.executor.decided_now(alarm_id, &alarm.kind, quick),
        Next::Queue(slot) => slot.send(Job {
            alarm_id,
            alarm,
            received_at,
        }),
    }
    // `{"alarm_id": "<id>"}`: an integer's digits need no JSON escaping.
    HttpResponse::Accepted()
        .content_type(actix_web::http::header::ContentType::json())
        .body(format!(r#"{{"alarm_id":"{alarm_id}"}}"#))
}

/// What becomes of an alarm once it is recorded.
enum Next<'a> {
    /// Already decided; recorded together with the alarm.
    Decided(QuickDecision),
    /// Decided by the executor, from this place in its queue.
    Queue(Permit<'a, Job>),
}

/// The body, at most [`MAX_BODY_BYTES`], within [`REQUEST_BODY_TIMEOUT`].
pub(super) async fn read_body(
    request: &HttpRequest,
    mut payload: web::Payload,
) -> Result<Vec<u8>, HttpResponse> {
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over {} KiB", MAX_BODY_BYTES / 1024),
        )
    };
    let declared = request
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    let read = async {
        let mut body = Vec::with_capacity(declared.unwrap_or(1024).min(MAX_BODY_BYTES));
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| {
                error(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the body: {e}"),
                )
            })?;
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    match tokio::time::timeout(REQUEST_BODY_TIMEOUT, read).await {
        Ok(result) => result,
        Err(_) => Err(error(
            StatusCode::REQUEST_TIMEOUT,
            "the body did not arrive in time",
        )),
    }
}
