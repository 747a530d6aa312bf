//! How long an accepted plan change takes, and which phase it is in at a given moment.
//!
//! Phases are computed from timestamps on every request instead of being driven by a
//! background task: a [`crate::clock::ManualClock`] jump then moves the fake instantly and
//! deterministically, and nothing runs while nobody is asking.

use std::time::Duration;

use jiff::Timestamp;

/// The phases of an accepted plan change.
///
/// Production shows the old plan for a while after the `200` ("may not show immediately"),
/// then reconfigures for up to ~10 minutes. A poller that trusts the first answer, or that
/// checks only `plan`, finishes early against this timeline, as it would in production.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeline {
    /// After the `200`, how long `GET` still shows the old plan, everything ready.
    pub lag: Duration,
    /// Then how long the cluster shows `ready: false` with an unconfigured node.
    pub reconfigure: Duration,
    /// If set, reconfiguring never ends (a change that hangs in production).
    pub stuck: bool,
}

impl Timeline {
    /// The change is done the moment it is accepted.
    pub fn instant() -> Self {
        Self {
            lag: Duration::ZERO,
            reconfigure: Duration::ZERO,
            stuck: false,
        }
    }

    /// Close to production: 30 s before anything shows, then 3 min of reconfiguring.
    pub fn realistic() -> Self {
        Self {
            lag: Duration::from_secs(30),
            reconfigure: Duration::from_secs(180),
            stuck: false,
        }
    }

    /// Starts reconfiguring at once and never finishes.
    pub fn stuck() -> Self {
        Self {
            lag: Duration::ZERO,
            reconfigure: Duration::from_secs(180),
            stuck: true,
        }
    }

    /// Fast enough to watch a whole change in `serve --demo`: 1 s lag, 3 s reconfiguring.
    pub fn demo() -> Self {
        Self {
            lag: Duration::from_secs(1),
            reconfigure: Duration::from_secs(3),
            stuck: false,
        }
    }

    /// The phase of a change accepted at `started`, seen at `now`.
    pub(crate) fn phase(&self, started: Timestamp, now: Timestamp) -> Phase {
        // A clock that went backwards (only possible with a manual clock) reads as "just
        // accepted" rather than as an error.
        let elapsed = crate::clock::between(started, now);
        if elapsed < self.lag {
            return Phase::Lag;
        }
        let into = elapsed - self.lag;
        if !self.stuck && into >= self.reconfigure {
            return Phase::Done;
        }
        let progress = if self.reconfigure.is_zero() {
            0.0
        } else {
            into.as_secs_f64() / self.reconfigure.as_secs_f64()
        };
        // A stuck change stalls half way: some nodes moved, the rest never will.
        let ceiling = if self.stuck { 0.5 } else { 0.999 };
        Phase::Reconfiguring {
            progress: progress.min(ceiling),
        }
    }
}

/// Where an accepted change stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Phase {
    /// Accepted but not visible yet: `GET` shows the old plan, ready.
    Lag,
    /// Visible and running: new plan, `ready: false`, a node unconfigured.
    /// `progress` is in `[0, 1)`.
    Reconfiguring { progress: f64 },
    /// Finished: the instance is on the new plan and ready.
    Done,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::add;

    #[test]
    fn phases_follow_the_durations() {
        let start: Timestamp = "2026-11-26T17:00:00Z".parse().unwrap();
        let at = |secs| add(start, Duration::from_secs(secs));
        let timeline = Timeline::realistic();
        assert_eq!(timeline.phase(start, at(29)), Phase::Lag);
        assert!(matches!(
            timeline.phase(start, at(30)),
            Phase::Reconfiguring { .. }
        ));
        assert_eq!(timeline.phase(start, at(210)), Phase::Done);
        assert_eq!(Timeline::instant().phase(start, start), Phase::Done);
        assert!(matches!(
            Timeline::stuck().phase(start, at(1_000_000)),
            Phase::Reconfiguring { progress } if progress <= 0.5
        ));
    }
}
