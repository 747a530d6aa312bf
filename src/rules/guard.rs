//! Guardrails the rules file sets: `[limits]`, `[[freeze]]` and `[[schedules]]`.
//!
//! The types are validated (see `guard_load.rs`) and their time questions are pure: given
//! an instant, is a freeze in force, is a schedule's window open and since when. Windows are
//! intervals of real time in a real zone, so a DST change never opens or closes one twice.

use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::cron::CronExpr;
use super::{Hours, InstanceNames, Selector};
use crate::decide::{Direction, Directions};

/// `[limits]`; every field optional.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// At most `count` changes (up and down together) per instance in any `per`.
    pub max_changes: Option<MaxChanges>,
    /// The sum of the monthly catalogue prices of every instance the daemon manages may
    /// not exceed this after a change up.
    pub max_monthly_price: Option<f64>,
}

/// `max_changes = { count = 4, per = "24h" }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxChanges {
    pub count: u32,
    pub per: Duration,
}

/// The most `max_changes.count` may be: the daemon keeps this many change starts per
/// instance in memory.
pub const MAX_CHANGES_COUNT: u32 = 100;

/// One `[[freeze]]`: no change in `directions` starts inside it.
#[derive(Debug, Clone)]
pub struct Freeze {
    pub when: FreezeWhen,
    pub directions: Directions,
}

/// A freeze's window.
#[derive(Debug, Clone)]
pub enum FreezeWhen {
    /// `from`/`to` as RFC 3339 instants: `[from, to)`.
    Between { from: Timestamp, to: Timestamp },
    /// `days`, `from`, `to`, `timezone`: every week, as `hours` of `[scale_down]`.
    Weekly(Hours),
}

impl Freeze {
    /// The window `at` is in, as `(from, until)`, when this freeze holds `direction`.
    pub fn holding(&self, direction: Direction, at: Timestamp) -> Option<(Timestamp, Timestamp)> {
        if !self.directions.holds(direction) {
            return None;
        }
        self.window_around(at)
    }

    /// The window `at` is in, whatever the direction.
    pub fn window_around(&self, at: Timestamp) -> Option<(Timestamp, Timestamp)> {
        match &self.when {
            FreezeWhen::Between { from, to } => (*from <= at && at < *to).then_some((*from, *to)),
            FreezeWhen::Weekly(hours) => hours.window_around(at),
        }
    }

    /// `2026-12-24T00:00:00+01:00 - 2026-12-27T00:00:00+01:00 (up, down)` or
    /// `fri 16:00-23:59 Europe/Stockholm (down)`, as `check` prints it.
    pub fn describe(&self) -> String {
        let when = match &self.when {
            FreezeWhen::Between { from, to } => format!("{from} - {to}"),
            FreezeWhen::Weekly(hours) => hours.describe(),
        };
        let directions = match (self.directions.up, self.directions.down) {
            (true, true) => "up, down",
            (true, false) => "up",
            _ => "down",
        };
        format!("{when} ({directions})")
    }
}

/// One `[[schedules]]`: a raised floor inside a recurring window.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: String,
    /// Empty means every instance.
    pub selectors: Vec<Selector>,
    pub timezone: TimeZone,
    /// The zone as written, e.g. `Europe/Stockholm`.
    pub zone_name: String,
    pub start: CronExpr,
    pub end: ScheduleEnd,
    pub min_plan: String,
}

/// How a schedule's window closes.
#[derive(Debug, Clone)]
pub enum ScheduleEnd {
    /// `end = "0 18 * * 1-5"`: at the first occurrence after the opening.
    Cron(Box<CronExpr>),
    /// `duration = "10h"` after the opening.
    Duration(Duration),
}

/// An open window of a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenWindow {
    pub opened: Timestamp,
    pub closes: Timestamp,
}

impl Schedule {
    /// Whether the schedule selects the instance with these names.
    pub fn selects(&self, names: &InstanceNames<'_>) -> bool {
        super::any_picks(&self.selectors, names)
    }

    /// When the window opened at `opened` closes.
    pub fn closes(&self, opened: Timestamp) -> Option<Timestamp> {
        match &self.end {
            ScheduleEnd::Cron(end) => end.next_after(opened, &self.timezone),
            ScheduleEnd::Duration(length) => {
                let length = jiff::SignedDuration::try_from(*length).ok()?;
                opened.checked_add(length).ok()
            }
        }
    }

    /// The window `at` is inside: the latest opening at or before `at`, while it has not
    /// closed yet.
    pub fn window_around(&self, at: Timestamp) -> Option<OpenWindow> {
        let opened = self.start.previous(at, &self.timezone)?;
        let closes = self.closes(opened)?;
        (at < closes).then_some(OpenWindow { opened, closes })
    }

    /// The next `n` openings strictly after `at`.
    pub fn next_openings(&self, at: Timestamp, n: usize) -> Vec<Timestamp> {
        let mut openings = Vec::with_capacity(n);
        let mut from = at;
        while openings.len() < n {
            let Some(next) = self.start.next_after(from, &self.timezone) else {
                break;
            };
            openings.push(next);
            from = next;
        }
        openings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn business_hours(end: ScheduleEnd) -> Schedule {
        Schedule {
            name: "business-hours".into(),
            selectors: Vec::new(),
            timezone: TimeZone::get("Europe/Stockholm").unwrap(),
            zone_name: "Europe/Stockholm".into(),
            start: CronExpr::parse("0 8 * * 1-5").unwrap(),
            end,
            min_plan: "hare-1".into(),
        }
    }

    #[test]
    fn a_window_is_open_from_its_start_to_its_end() {
        let cron = business_hours(ScheduleEnd::Cron(Box::new(
            CronExpr::parse("0 18 * * 1-5").unwrap(),
        )));
        let hours = business_hours(ScheduleEnd::Duration(Duration::from_secs(10 * 3600)));
        for schedule in [cron, hours] {
            let open = schedule
                .window_around(at("2026-12-04T09:00:00+01:00"))
                .unwrap();
            assert_eq!(open.opened, at("2026-12-04T08:00:00+01:00"));
            assert_eq!(open.closes, at("2026-12-04T18:00:00+01:00"));
            assert!(
                schedule
                    .window_around(at("2026-12-04T18:00:00+01:00"))
                    .is_none()
            );
            assert!(
                schedule
                    .window_around(at("2026-12-05T09:00:00+01:00"))
                    .is_none()
            );
            assert_eq!(
                schedule.next_openings(at("2026-12-04T09:00:00+01:00"), 2),
                vec![
                    at("2026-12-07T08:00:00+01:00"),
                    at("2026-12-08T08:00:00+01:00")
                ]
            );
        }
    }

    #[test]
    fn a_weekly_freeze_across_midnight() {
        let freeze = Freeze {
            when: FreezeWhen::Weekly(Hours {
                days: vec![jiff::civil::Weekday::Friday],
                from: jiff::civil::time(22, 0, 0, 0),
                to: jiff::civil::time(2, 0, 0, 0),
                timezone: TimeZone::get("Europe/Stockholm").unwrap(),
                zone_name: "Europe/Stockholm".into(),
            }),
            directions: Directions {
                up: false,
                down: true,
            },
        };
        let saturday_one = at("2026-12-05T01:00:00+01:00");
        assert!(freeze.holding(Direction::Down, saturday_one).is_some());
        assert!(freeze.holding(Direction::Up, saturday_one).is_none());
        assert!(
            freeze
                .holding(Direction::Down, at("2026-12-05T02:00:00+01:00"))
                .is_none()
        );
    }
}
