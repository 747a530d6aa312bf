//! Retrying transient failures, inside a deadline, on the injected clock.
//!
//! Two backoffs, because the two kinds of trouble differ: a 429 means "you are too fast",
//! so it backs off from 5 s up to 60 s (or exactly as long as `Retry-After` says), while a
//! 503, a lock or a dropped connection is usually over in a second or two. Nothing else is
//! retried: a 422, a 401 or a plain 400 will answer the same again.
//!
//! Sleeps go through [`Clock::sleep`](crate::clock::Clock::sleep), so tests on a
//! `ManualClock` run instantly and can assert every delay that was asked for.

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use super::error::ApiError;
use crate::clock::{SharedClock, add};

/// First delay after a 429 without `Retry-After`.
pub const RATE_LIMIT_BASE_DELAY: Duration = Duration::from_secs(5);
/// Longest delay after a 429 without `Retry-After`.
pub const RATE_LIMIT_MAX_DELAY: Duration = Duration::from_secs(60);
/// First delay after any other transient failure.
pub const TRANSIENT_BASE_DELAY: Duration = Duration::from_secs(1);
/// Longest delay after any other transient failure.
pub const TRANSIENT_MAX_DELAY: Duration = Duration::from_secs(30);
/// A `Retry-After: 0` still waits this long, so a server saying "now" cannot make us spin.
pub const MIN_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The backoff for 429 answers without `Retry-After`: 5 s, 10 s, 20 s, 40 s, 60 s, 60 s…
pub fn rate_limit_backoff() -> ExponentialBuilder {
    ExponentialBuilder::new()
        .with_min_delay(RATE_LIMIT_BASE_DELAY)
        .with_max_delay(RATE_LIMIT_MAX_DELAY)
        .with_factor(2.0)
        .without_max_times()
}

/// The backoff for other transient failures: 1 s, 2 s, 4 s … 30 s.
pub fn transient_backoff() -> ExponentialBuilder {
    ExponentialBuilder::new()
        .with_min_delay(TRANSIENT_BASE_DELAY)
        .with_max_delay(TRANSIENT_MAX_DELAY)
        .with_factor(2.0)
        .without_max_times()
}

/// Runs `attempt` until it succeeds, fails for good, or the next delay would end after
/// `deadline` (counted from now on `clock`). `what` names the call in logs.
///
/// Returns the attempt's own error when it is not transient, and
/// [`ApiError::DeadlineExceeded`] wrapping the last error when patience ran out.
pub async fn with_retries<T, F, Fut>(
    clock: &SharedClock,
    deadline: Duration,
    what: &str,
    mut attempt: F,
) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    // backon's schedules, driven by a plain loop: its `Retry` combinator holds
    // higher-ranked closures that keep the caller's future from being provably `Send`
    // (rust-lang/rust#102211), and the daemon spawns these calls.
    let give_up_at = add(clock.now(), deadline);
    let mut transient_delays = transient_backoff().build();
    let mut rate_limit_delays = rate_limit_backoff().build();
    let mut attempts: u32 = 0;
    loop {
        attempts += 1;
        let error = match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) if !error.is_transient() => return Err(error),
            Err(error) => error,
        };
        // The transient schedule advances on 429s too; its only effect is that a 503
        // after a run of 429s waits a little longer, which is the right direction anyway.
        let transient_delay = transient_delays.next();
        let delay = match &error {
            ApiError::RateLimited {
                retry_after: Some(after),
            } => Some((*after).max(MIN_RETRY_AFTER)),
            ApiError::RateLimited { retry_after: None } => rate_limit_delays.next(),
            _ => transient_delay,
        };
        let Some(delay) = delay.filter(|delay| add(clock.now(), *delay) <= give_up_at) else {
            tracing::warn!(call = what, attempts, error = %error, "CloudAMQP call gave up at its retry deadline");
            return Err(ApiError::DeadlineExceeded {
                attempts,
                last: Box::new(error),
            });
        };
        tracing::warn!(
            call = what,
            error = %error,
            retry_in = %crate::duration::display(delay),
            "CloudAMQP call failed, retrying"
        );
        clock.sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, Mutex};

    fn clock() -> Arc<ManualClock> {
        ManualClock::new("2026-11-26T17:00:00Z".parse().unwrap())
    }

    /// Answers the scripted errors in order, then succeeds.
    async fn run(
        clock: &Arc<ManualClock>,
        deadline: Duration,
        script: Vec<ApiError>,
    ) -> (Result<u32, ApiError>, u32) {
        let script = Mutex::new(script.into_iter());
        let calls = AtomicU32::new(0);
        let shared: SharedClock = clock.clone();
        let result = with_retries(&shared, deadline, "test", || {
            let n = calls.fetch_add(1, Ordering::Relaxed) + 1;
            let next = script.lock().unwrap().next();
            async move { next.map_or(Ok(n), Err) }
        })
        .await;
        (result, calls.load(Ordering::Relaxed))
    }

    fn secs(list: &[u64]) -> Vec<Duration> {
        list.iter().map(|s| Duration::from_secs(*s)).collect()
    }

    #[tokio::test]
    async fn rate_limits_back_off_from_five_seconds_to_a_minute() {
        let clock = clock();
        let limited = || ApiError::RateLimited { retry_after: None };
        let (result, calls) = run(&clock, Duration::from_secs(3600), vec![limited(); 6]).await;
        assert_eq!(result, Ok(7));
        assert_eq!(calls, 7);
        assert_eq!(clock.sleeps(), secs(&[5, 10, 20, 40, 60, 60]));
    }

    #[tokio::test]
    async fn retry_after_is_honoured() {
        let clock = clock();
        let script = vec![
            ApiError::RateLimited {
                retry_after: Some(Duration::from_secs(17)),
            },
            ApiError::RateLimited {
                retry_after: Some(Duration::ZERO),
            },
        ];
        let (result, _) = run(&clock, Duration::from_secs(300), script).await;
        assert!(result.is_ok());
        assert_eq!(clock.sleeps(), secs(&[17, 1]));
    }

    #[tokio::test]
    async fn other_transients_back_off_from_one_second() {
        let clock = clock();
        let busy = || ApiError::Transient { what: "503".into() };
        let (result, _) = run(&clock, Duration::from_secs(300), vec![busy(); 3]).await;
        assert!(result.is_ok());
        assert_eq!(clock.sleeps(), secs(&[1, 2, 4]));
    }

    #[tokio::test]
    async fn permanent_errors_are_not_retried() {
        for error in [
            ApiError::Unauthorized,
            ApiError::BadRequest {
                message: "x".into(),
            },
            ApiError::MoveRefused {
                message: "x".into(),
            },
        ] {
            let clock = clock();
            let (result, calls) = run(&clock, Duration::from_secs(300), vec![error.clone()]).await;
            assert_eq!(result, Err(error));
            assert_eq!(calls, 1);
            assert!(clock.sleeps().is_empty());
        }
    }

    #[tokio::test]
    async fn the_deadline_stops_retries_before_a_delay_would_pass_it() {
        let clock = clock();
        let limited = || ApiError::RateLimited { retry_after: None };
        // 5 + 10 + 20 = 35 s fit in 40 s; the next 40 s would not.
        let (result, calls) = run(&clock, Duration::from_secs(40), vec![limited(); 10]).await;
        assert_eq!(
            result,
            Err(ApiError::DeadlineExceeded {
                attempts: 4,
                last: Box::new(limited())
            })
        );
        assert_eq!(calls, 4);
        assert_eq!(clock.sleeps(), secs(&[5, 10, 20]));
    }
}
