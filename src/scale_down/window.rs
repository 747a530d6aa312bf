//! Stabilization: a step down waits until every look over `window` has passed.

use std::time::Duration;

use jiff::Timestamp;

use crate::clock::{add, between};

/// Late looks (a busy rate limit, a slow API) are still watching: this much past two
/// `check_every` does not break the streak.
pub const GAP_SLACK: Duration = Duration::from_secs(30);

/// The run of passing looks up to now: since when, how many, the last one.
///
/// A failed look ends it; so does an alarm received after it began, and a gap of more than
/// two `check_every` (and [`GAP_SLACK`]) between looks: the daemon was not watching. A
/// restart starts afresh (the streak lives in memory), since alarms sent while it was down
/// never arrived.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Streak {
    pub since: Option<Timestamp>,
    pub last: Option<Timestamp>,
    pub looks: u32,
}

impl Streak {
    /// The streak as `explain --down` assumes it: the given figures stand for every look of
    /// the window before `now`.
    pub fn whole_window(now: Timestamp, window: Duration) -> Self {
        let since = jiff::SignedDuration::try_from(window)
            .ok()
            .and_then(|w| now.checked_sub(w).ok())
            .unwrap_or(Timestamp::MIN);
        Self {
            since: Some(since),
            last: Some(now),
            looks: 1,
        }
    }

    /// The streak after a look at `at`.
    #[must_use]
    pub fn after_look(
        self,
        at: Timestamp,
        passed: bool,
        last_alarm: Option<Timestamp>,
        check_every: Duration,
    ) -> Self {
        if !passed {
            return Self::default();
        }
        let unbroken = self.since.is_some_and(|since| {
            last_alarm.is_none_or(|alarm| alarm < since)
                && self.last.is_some_and(|last| {
                    between(last, at) <= check_every.saturating_mul(2).saturating_add(GAP_SLACK)
                })
        });
        if unbroken {
            Self {
                last: Some(at),
                looks: self.looks.saturating_add(1),
                ..self
            }
        } else {
            Self {
                since: Some(at),
                last: Some(at),
                looks: 1,
            }
        }
    }

    /// Whether the looks have passed for a whole `window` (at least two of them) by `now`.
    pub fn is_full(&self, window: Duration, now: Timestamp) -> bool {
        self.looks >= 2 && self.full_at(window).is_some_and(|at| at <= now)
    }

    /// When the streak covers `window`, if it goes on.
    pub fn full_at(&self, window: Duration) -> Option<Timestamp> {
        self.since.map(|since| add(since, window))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY: Duration = Duration::from_secs(300);
    const WINDOW: Duration = Duration::from_secs(3600);

    fn t(minutes: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + minutes * 60).unwrap()
    }

    fn run(looks: &[(i64, bool)], alarm: Option<i64>) -> Streak {
        looks
            .iter()
            .fold(Streak::default(), |streak, (at, passed)| {
                streak.after_look(t(*at), *passed, alarm.map(t), EVERY)
            })
    }

    #[test]
    fn a_whole_window_of_passing_looks_is_full() {
        let looks: Vec<(i64, bool)> = (0..=12).map(|i| (i * 5, true)).collect();
        let streak = run(&looks[..12], None);
        assert!(!streak.is_full(WINDOW, t(55)));
        let streak = run(&looks, None);
        assert!(streak.is_full(WINDOW, t(60)));
        assert_eq!(streak.looks, 13);
    }

    #[test]
    fn a_failed_look_an_alarm_or_a_gap_starts_it_again() {
        let failed = run(&[(0, true), (5, false), (10, true)], None);
        assert_eq!(failed.since, Some(t(10)));
        let alarmed = run(&[(0, true), (5, true), (10, true)], Some(7));
        assert_eq!((alarmed.since, alarmed.looks), (Some(t(10)), 1));
        // Ten minutes between looks is still watching; eleven is not.
        let gap = run(&[(0, true), (10, true), (21, true)], None);
        assert_eq!((gap.since, gap.looks), (Some(t(21)), 1));
    }

    #[test]
    fn explain_stands_the_figures_for_the_whole_window() {
        let streak = Streak::whole_window(t(60), WINDOW).after_look(t(60), true, None, EVERY);
        assert!(streak.is_full(WINDOW, t(60)));
        // An alarm inside the window is not quiet for a whole window.
        let streak =
            Streak::whole_window(t(60), WINDOW).after_look(t(60), true, Some(t(30)), EVERY);
        assert!(!streak.is_full(WINDOW, t(60)));
    }
}
