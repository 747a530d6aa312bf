//! Sending one prepared request, and how long to wait before trying it again.
//!
//! What is retried is decided here, by status class, and nowhere else: 408, 429, 5xx, a
//! connection that failed or a timeout will likely go through later; any other answer
//! (another 4xx, or a redirect we do not follow) would be the same next time.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use reqwest::StatusCode;
use secrecy::ExposeSecret;

use super::sink::Prepared;
use crate::cloudamqp::error::{retry_after, sanitize};

/// A delivery still failing this long after its event gives up (the event is dropped).
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
/// The first delay after a failed attempt (before jitter).
pub const BASE_DELAY: Duration = Duration::from_secs(1);
/// The longest delay the backoff grows to (before jitter).
pub const MAX_DELAY: Duration = Duration::from_secs(600);
/// The longest `Retry-After` honoured: a server asking for more is asked again sooner.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// How much of an answer's body an outcome quotes.
const MAX_WHY_BODY_CHARS: usize = 200;
/// Redirects followed, to the same scheme and host only.
const MAX_REDIRECTS: usize = 5;

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx answer.
    Sent,
    /// Worth trying again: `after` is the server's `Retry-After`, if it gave one.
    Retry {
        after: Option<Duration>,
        why: String,
    },
    /// Would fail the same again: not retried.
    Refused { why: String },
}

/// The HTTP client for every sink: `timeout` for a whole request, our user agent, no
/// hidden retries, and redirects followed only to the same scheme and host (a redirect must
/// not carry a signed body or a routing key elsewhere).
pub fn client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    let same_host = reqwest::redirect::Policy::custom(|attempt| {
        let first = attempt.previous().first();
        let same = first.is_some_and(|first| {
            first.scheme() == attempt.url().scheme()
                && first.host_str() == attempt.url().host_str()
                && first.port_or_known_default() == attempt.url().port_or_known_default()
        });
        if same && attempt.previous().len() <= MAX_REDIRECTS {
            attempt.follow()
        } else {
            attempt.stop()
        }
    });
    reqwest::Client::builder()
        .user_agent(crate::cloudamqp::USER_AGENT)
        .timeout(timeout)
        .connect_timeout(timeout)
        .retry(reqwest::retry::never())
        .redirect(same_host)
        .build()
}

/// Sends `prepared` once and classifies the result. No `why` holds the URL or a key.
pub async fn send(client: &reqwest::Client, prepared: &Prepared) -> Outcome {
    let request = client
        .post(prepared.url.expose_secret().trim())
        .headers(prepared.headers.clone())
        .body(prepared.body.clone());
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) => {
            let why = scrub(prepared, &describe(&error));
            // A request that could not even be built will not build next time either.
            return if error.is_builder() {
                Outcome::Refused { why }
            } else {
                Outcome::Retry { after: None, why }
            };
        }
    };
    let status = response.status();
    if status.is_success() {
        return Outcome::Sent;
    }
    let after = retry_after(response.headers(), jiff::Timestamp::now());
    // The body only to explain; a failure to read it explains nothing more.
    let body = response.bytes().await.unwrap_or_default();
    let why = scrub(prepared, &status_why(status, &body));
    if retried(status) {
        Outcome::Retry { after, why }
    } else {
        Outcome::Refused { why }
    }
}

/// 408, 429 and 5xx are worth another try.
fn retried(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429) || status.is_server_error()
}

/// `400 Bad Request`, with the start of the answer's text if it has one.
fn status_why(status: StatusCode, body: &[u8]) -> String {
    let mut why = status.to_string();
    if status.is_redirection() {
        why.push_str(" (redirect not followed)");
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    // An HTML error page says nothing the status does not.
    if !text.is_empty() && !text.starts_with('<') {
        why.push_str(": ");
        why.extend(text.chars().take(MAX_WHY_BODY_CHARS));
    }
    why
}

/// A reqwest error without its URL, and its causes (they say "connection refused").
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut why = kind.to_owned();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        why.push_str(": ");
        why.push_str(&cause.to_string());
        source = cause.source();
    }
    why
}

/// `text` without any of `prepared`'s secrets, URL credentials or control characters.
fn scrub(prepared: &Prepared, text: &str) -> String {
    prepared
        .secrets
        .iter()
        .fold(text.to_owned(), |text, secret| {
            sanitize(&text, secret.expose_secret().trim())
        })
}

/// The delay before attempt `attempt + 1`, after `attempt` (1 = the first) failed.
///
/// 1 s, 2 s, 4 s … up to 10 min, with equal jitter: `jitter` (in 0..1, the caller's random
/// number, so tests are deterministic) picks a point in the upper half of the step, so
/// senders that failed together spread out but none retries at once. A server's
/// `Retry-After` wins when it is longer (up to 1 h).
pub fn backoff(attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
    let step = ExponentialBuilder::new()
        .with_min_delay(BASE_DELAY)
        .with_max_delay(MAX_DELAY)
        .with_factor(2.0)
        .without_max_times()
        .build()
        // The schedule reaches its cap after ten steps; no need to walk further.
        .nth(attempt.saturating_sub(1).min(16) as usize)
        .unwrap_or(MAX_DELAY);
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let half = step / 2;
    let delay = half + half.mul_f64(jitter);
    match retry_after {
        Some(after) => delay.max(after.min(MAX_RETRY_AFTER)),
        None => delay,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_by_class() {
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(retried(StatusCode::from_u16(code).unwrap()), "{code}");
        }
        for code in [301, 400, 401, 403, 404, 410, 413, 422] {
            assert!(!retried(StatusCode::from_u16(code).unwrap()), "{code}");
        }
    }

    #[test]
    fn why_quotes_the_start_of_a_text_answer_only() {
        assert_eq!(
            status_why(StatusCode::BAD_REQUEST, b"invalid_payload"),
            "400 Bad Request: invalid_payload"
        );
        assert_eq!(
            status_why(StatusCode::BAD_GATEWAY, b"<html>nope</html>"),
            "502 Bad Gateway"
        );
        let long = "x".repeat(1000);
        assert!(status_why(StatusCode::BAD_REQUEST, long.as_bytes()).len() < 250);
    }
}

#[cfg(test)]
mod backoff_tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn it_doubles_from_a_second_to_ten_minutes() {
        let full: Vec<Duration> = (1..=12).map(|n| backoff(n, None, 1.0)).collect();
        assert_eq!(
            full,
            [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600].map(secs)
        );
        assert_eq!(backoff(0, None, 1.0), secs(1));
        assert_eq!(backoff(u32::MAX, None, 1.0), MAX_DELAY);
    }

    #[test]
    fn jitter_picks_within_the_upper_half_of_the_step() {
        assert_eq!(backoff(4, None, 0.0), secs(4));
        assert_eq!(backoff(4, None, 0.5), secs(6));
        assert_eq!(backoff(4, None, 1.0), secs(8));
        assert_eq!(backoff(4, None, 7.0), secs(8));
        assert_eq!(backoff(4, None, f64::NAN), secs(4));
        assert_eq!(backoff(30, None, 0.0), secs(300));
    }

    #[test]
    fn a_longer_retry_after_wins_up_to_an_hour() {
        assert_eq!(backoff(1, Some(secs(7)), 0.3), secs(7));
        assert_eq!(backoff(10, Some(secs(7)), 1.0), secs(512));
        assert_eq!(backoff(1, Some(secs(86_400)), 0.0), MAX_RETRY_AFTER);
        assert_eq!(backoff(1, Some(Duration::ZERO), 1.0), secs(1));
    }

    #[test]
    fn a_day_holds_well_over_a_hundred_attempts() {
        // At the cap a delivery is tried at least every 10 minutes until GIVE_UP_AFTER.
        let total: Duration = (1..=150).map(|n| backoff(n, None, 1.0)).sum();
        assert!(total < GIVE_UP_AFTER, "{total:?}");
    }
}
