//! Time, injected.
//!
//! Everything that waits or compares against "now" (cooldowns, retry backoff, change
//! polling, change timeouts, the fake CloudAMQP's reconfiguration timeline) asks a [`Clock`]
//! instead of reading the system clock, so tests can run an hour of polling in microseconds
//! and assert exactly which delays were requested.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// A boxed, sendable future returned by [`Clock::sleep`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// The source of "now" and of waiting.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current instant.
    fn now(&self) -> Timestamp;
    /// Completes once `duration` has passed on this clock.
    fn sleep(&self, duration: Duration) -> Sleep;
}

/// A clock shared between the parts of one application.
pub type SharedClock = Arc<dyn Clock>;

/// The real clock: wall time for "now", tokio's timer for waiting.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl SystemClock {
    /// A [`SharedClock`] on the system clock.
    pub fn shared() -> SharedClock {
        Arc::new(SystemClock)
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock that only moves when told to, or when someone sleeps on it.
///
/// `sleep(d)` advances the clock by `d` at once and yields to the scheduler, so code that
/// polls every 15 s for an hour finishes instantly while seeing time pass exactly as it
/// would in production. Every requested sleep is recorded for assertions.
#[derive(Debug)]
pub struct ManualClock {
    inner: Mutex<ManualState>,
}

#[derive(Debug)]
struct ManualState {
    now: Timestamp,
    sleeps: Vec<Duration>,
}

impl ManualClock {
    /// A manual clock standing at `start`.
    pub fn new(start: Timestamp) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(ManualState {
                now: start,
                sleeps: Vec::new(),
            }),
        })
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut state = self.lock();
        state.now = add(state.now, by);
    }

    /// Sets the clock to `at`, backwards too (as a wall clock stepped by NTP may be).
    pub fn set(&self, at: Timestamp) {
        self.lock().now = at;
    }

    /// Every duration passed to [`Clock::sleep`] so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.lock().sleeps.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ManualState> {
        // The state is two plain values: a panic elsewhere cannot leave it inconsistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        self.lock().now
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        {
            let mut state = self.lock();
            state.now = add(state.now, duration);
            state.sleeps.push(duration);
        }
        Box::pin(tokio::task::yield_now())
    }
}

/// Real time moved by an offset that can be changed while it runs: "now" is the system
/// clock plus the offset, and waiting is real waiting, cut short when the clock is moved,
/// so a test can jump a running daemon to 07:59:58 before a schedule opens, or across a
/// DST change, and watch what it does in real time from there.
#[derive(Debug)]
pub struct OffsetClock {
    offset: Mutex<SignedDuration>,
    moved: tokio::sync::watch::Sender<u64>,
}

impl OffsetClock {
    /// A clock that reads `at` now and runs on from there.
    pub fn starting_at(at: Timestamp) -> Arc<Self> {
        Arc::new(Self {
            offset: Mutex::new(at.duration_since(Timestamp::now())),
            moved: tokio::sync::watch::channel(0).0,
        })
    }

    /// Moves the clock so that it reads `at` now; every sleeper wakes.
    pub fn set(&self, at: Timestamp) {
        *self.offset.lock().unwrap_or_else(PoisonError::into_inner) =
            at.duration_since(Timestamp::now());
        self.moved.send_modify(|n| *n += 1);
    }

    /// Moves the clock on by `by`; every sleeper wakes.
    pub fn advance(&self, by: Duration) {
        {
            let mut offset = self.offset.lock().unwrap_or_else(PoisonError::into_inner);
            *offset =
                offset.saturating_add(SignedDuration::try_from(by).unwrap_or(SignedDuration::MAX));
        }
        self.moved.send_modify(|n| *n += 1);
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> Timestamp {
        let offset = *self.offset.lock().unwrap_or_else(PoisonError::into_inner);
        Timestamp::now()
            .checked_add(offset)
            .unwrap_or(Timestamp::MAX)
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        let mut moved = self.moved.subscribe();
        Box::pin(async move {
            tokio::select! {
                () = tokio::time::sleep(duration) => {}
                _ = moved.changed() => {}
            }
        })
    }
}

/// `at + by`, saturating at the largest timestamp jiff can represent.
pub fn add(at: Timestamp, by: Duration) -> Timestamp {
    SignedDuration::try_from(by)
        .ok()
        .and_then(|by| at.checked_add(by).ok())
        .unwrap_or(Timestamp::MAX)
}

/// `at - by`, saturating at the smallest timestamp jiff can represent.
pub fn sub(at: Timestamp, by: Duration) -> Timestamp {
    SignedDuration::try_from(by)
        .ok()
        .and_then(|by| at.checked_sub(by).ok())
        .unwrap_or(Timestamp::MIN)
}

/// The time from `from` to `to`; zero when `to` is not later.
pub fn between(from: Timestamp, to: Timestamp) -> Duration {
    Duration::try_from(to.duration_since(from)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_clock_advances_on_sleep_and_records_it() {
        let start: Timestamp = "2026-11-26T17:00:00Z".parse().unwrap();
        let clock = ManualClock::new(start);
        clock.sleep(Duration::from_secs(15)).await;
        clock.advance(Duration::from_secs(45));
        assert_eq!(
            clock.now(),
            "2026-11-26T17:01:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(clock.sleeps(), vec![Duration::from_secs(15)]);
    }

    #[test]
    fn add_saturates() {
        assert_eq!(add(Timestamp::MAX, Duration::from_secs(1)), Timestamp::MAX);
    }

    #[test]
    fn between_is_zero_once_past() {
        let start: Timestamp = "2026-11-26T17:00:00Z".parse().unwrap();
        let later = add(start, Duration::from_secs(90));
        assert_eq!(between(start, later), Duration::from_secs(90));
        assert_eq!(between(later, start), Duration::ZERO);
    }
}
