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
    // Whole seconds, rounded up so that a sender waiting exactly this long is not refused
    // again, and at least one: `Retry-After: 0` would invite a tight loop.
    let seconds = retry_after_seconds(after);
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn retry_after_seconds(after: Duration) -> u64 {
    (after.as_secs() + u64::from(after.subsec_nanos() > 0)).max(1)
}

pub async fn not_found(request: HttpRequest) -> HttpResponse {
    error(
        StatusCode::NOT_FOUND,
        format!("no such endpoint: {}", truncate(request.path(), 100)),
    )
}

pub async fn method_not_allowed(request: HttpRequest) -> HttpResponse {
    let allowed = match request.path() {
        "/cloudamqp/alarm" | "/pause" => "POST",
        path if path.starts_with("/pause/") => "DELETE",
        _ => "GET",
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

pub(super) fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(max).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds_and_is_never_zero() {
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_secs(5)), 5);
        assert_eq!(retry_after_seconds(Duration::from_millis(5_001)), 6);
        assert_eq!(retry_after_seconds(Duration::from_millis(5_999)), 6);
    }
}
