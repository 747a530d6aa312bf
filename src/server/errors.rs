//! Every error answer is JSON `{"error": "..."}`; the mapping lives here and never leaks
//! internals.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use std::time::Duration;

/// An error answer with `message`.
pub fn error(status: StatusCode, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({ "error": message.into() }))
}

/// An error answer that tells the sender when to try again.
pub fn retry_later(
    status: StatusCode,
    after: Duration,
    message: impl Into<String>,
) -> HttpResponse {
    let mut response = error(status, message);
    // Whole seconds, at least one: `Retry-After: 0` would invite a tight loop.
    let seconds = after.as_secs().max(1);
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

pub async fn not_found(request: HttpRequest) -> HttpResponse {
    error(
        StatusCode::NOT_FOUND,
        format!("no such endpoint: {}", truncate(request.path(), 100)),
    )
}

pub async fn method_not_allowed(request: HttpRequest) -> HttpResponse {
    let allowed = if request.path() == "/cloudamqp/alarm" {
        "POST"
    } else {
        "GET"
    };
    let mut response = error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} is not allowed on {}; use {allowed}",
            request.method(),
            request.path()
        ),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allowed));
    response
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(max).collect::<String>())
    }
}
