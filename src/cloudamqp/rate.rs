//! The client-side rate limit: governor's GCRA, driven by the injected clock.
//!
//! governor's own waiting (`until_ready`) reads the real clock and sleeps with a real
//! timer; under a `ManualClock` that would both slow tests down and hide the delays. So the
//! limiter reads time from our [`Clock`] and waits with its `sleep`.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use governor::clock::Clock as GovernorClock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter as Gcra};
use jiff::Timestamp;

use crate::clock::SharedClock;

/// Our clock as governor sees it: nanoseconds of the clock's forward movement since the
/// limiter was made. Our clock is a wall clock; a step back (NTP) counts as no time, not as
/// negative time, which would make the limiter wait for the clock to catch up.
#[derive(Debug, Clone)]
struct ClockAdapter {
    clock: SharedClock,
    /// The wall time last read, and the forward time counted up to it.
    read: Arc<Mutex<(Timestamp, u64)>>,
}

impl ClockAdapter {
    fn new(clock: SharedClock) -> Self {
        Self {
            read: Arc::new(Mutex::new((clock.now(), 0))),
            clock,
        }
    }
}

impl GovernorClock for ClockAdapter {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        let now = self.clock.now();
        let mut read = self.read.lock().unwrap_or_else(PoisonError::into_inner);
        let forward = (now.as_nanosecond() - read.0.as_nanosecond()).max(0);
        read.1 = read
            .1
            .saturating_add(u64::try_from(forward).unwrap_or(u64::MAX));
        read.0 = now;
        Nanos::from(read.1)
    }
}

/// Admits at most `requests_per_second` requests per second (bursts of that size allowed),
/// shared by every call of one client.
pub struct RateLimit {
    gcra: Gcra<NotKeyed, InMemoryState, ClockAdapter, NoOpMiddleware<Nanos>>,
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit").finish_non_exhaustive()
    }
}

impl RateLimit {
    /// A limiter on `clock`; a rate of 0 is taken as 1 (settings refuse 0 anyway).
    pub fn new(requests_per_second: u32, clock: SharedClock) -> Self {
        let rate = NonZeroU32::new(requests_per_second).unwrap_or(NonZeroU32::MIN);
        Self {
            gcra: Gcra::direct_with_clock(Quota::per_second(rate), ClockAdapter::new(clock)),
        }
    }

    /// Waits until one more request may go out.
    pub async fn until_ready(&self) {
        loop {
            match self.gcra.check() {
                Ok(()) => return,
                Err(not_until) => {
                    let clock = self.gcra.clock();
                    let wait: Duration = not_until.wait_time_from(clock.now());
                    tracing::debug!(wait_ms = wait.as_millis(), "client-side rate limit");
                    clock.clock.sleep(wait).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[tokio::test]
    async fn bursts_up_to_the_rate_then_spaces_requests() {
        let clock = ManualClock::new("2026-11-26T17:00:00Z".parse().unwrap());
        let limit = RateLimit::new(2, clock.clone());
        for _ in 0..4 {
            limit.until_ready().await;
        }
        assert_eq!(
            clock.sleeps(),
            vec![Duration::from_millis(500), Duration::from_millis(500)]
        );
    }

    /// The wall clock stepped back an hour (NTP): requests still go out at the rate, not
    /// after an hour's wait for the clock to catch up.
    #[tokio::test]
    async fn a_clock_stepped_back_does_not_stall_requests() {
        let clock = ManualClock::new("2026-11-26T17:00:00Z".parse().unwrap());
        let limit = RateLimit::new(2, clock.clone());
        limit.until_ready().await;
        limit.until_ready().await;
        clock.set("2026-11-26T16:00:00Z".parse().unwrap());
        limit.until_ready().await;
        limit.until_ready().await;
        assert_eq!(
            clock.sleeps(),
            vec![Duration::from_millis(500), Duration::from_millis(500)]
        );
    }
}
