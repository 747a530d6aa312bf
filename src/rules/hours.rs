//! Maintenance hours: `hours = { days = ["sat", "sun"], from = "02:00", to = "05:00",
//! timezone = "Europe/Stockholm" }`.
//!
//! A step down reconfigures the cluster, and on a one-node plan nothing takes over while it
//! does: operators put it in the hours their users sleep. The hours are wall-clock hours in
//! a real time zone, so "02:00" follows daylight saving time.
//!
//! Each day's window is one interval of real time, from the first instant the day shows
//! `from` to the first instant it shows `to` (the next day's when `to` is not after `from`).
//! On the night clocks go back, 02:30 happens twice; the window still opens once and closes
//! once, because it is an interval of instants, not a test of what the clock shows. On the
//! night clocks go forward, a `from` that does not exist opens the window at the first
//! instant after the gap.

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// Days of the week, as `days` entries are written.
pub const DAY_NAMES: &[(&str, Weekday)] = &[
    ("mon", Weekday::Monday),
    ("tue", Weekday::Tuesday),
    ("wed", Weekday::Wednesday),
    ("thu", Weekday::Thursday),
    ("fri", Weekday::Friday),
    ("sat", Weekday::Saturday),
    ("sun", Weekday::Sunday),
];

/// Validated maintenance hours.
#[derive(Debug, Clone)]
pub struct Hours {
    /// The days a window starts on (a window that runs past midnight belongs to the day it
    /// started). Every day when the file lists none.
    pub days: Vec<Weekday>,
    pub from: Time,
    pub to: Time,
    pub timezone: TimeZone,
    /// The zone as written, e.g. `Europe/Stockholm`.
    pub zone_name: String,
}

impl Hours {
    /// Whether `at` is inside a window.
    pub fn contains(&self, at: Timestamp) -> bool {
        self.window_around(at).is_some()
    }

    /// The window `at` is in, as `(opened, closes)`.
    pub fn window_around(&self, at: Timestamp) -> Option<(Timestamp, Timestamp)> {
        let today = at.to_zoned_datetime(self.timezone.clone()).date();
        // A window that runs past midnight may have started yesterday.
        [today.yesterday().ok()?, today]
            .into_iter()
            .filter_map(|day| self.window_of(day))
            .find(|(open, close)| *open <= at && at < *close)
    }

    /// The earliest instant at or after `at` inside a window; `None` only if no window
    /// opens in the next two weeks (impossible for valid hours, which name a day).
    pub fn next_open(&self, at: Timestamp) -> Option<Timestamp> {
        if self.contains(at) {
            return Some(at);
        }
        let mut day = at.to_zoned_datetime(self.timezone.clone()).date();
        for _ in 0..15 {
            if let Some((open, _)) = self.window_of(day)
                && open >= at
            {
                return Some(open);
            }
            day = day.tomorrow().ok()?;
        }
        None
    }

    /// The window that starts on `day`, if the hours name that day.
    fn window_of(&self, day: Date) -> Option<(Timestamp, Timestamp)> {
        if !self.days.contains(&day.weekday()) {
            return None;
        }
        let end_day = if self.to > self.from {
            day
        } else {
            day.checked_add(1.day()).ok()?
        };
        // `to_zoned` disambiguates "compatibly": a time in a gap moves past the gap, a time
        // that happens twice is its first occurrence.
        let open = day
            .to_datetime(self.from)
            .to_zoned_datetime(self.timezone.clone())
            .ok()?;
        let close = end_day
            .to_datetime(self.to)
            .to_zoned_datetime(self.timezone.clone())
            .ok()?;
        (open.timestamp() < close.timestamp()).then(|| (open.timestamp(), close.timestamp()))
    }

    /// `sat,sun 02:00-05:00 Europe/Stockholm`, as `check` prints it.
    pub fn describe(&self) -> String {
        let days = if self.days.len() == 7 {
            "every day".to_owned()
        } else {
            self.days
                .iter()
                .filter_map(|d| DAY_NAMES.iter().find(|(_, w)| w == d).map(|(n, _)| *n))
                .collect::<Vec<_>>()
                .join(",")
        };
        format!(
            "{days} {}-{} {}",
            self.from.strftime("%H:%M"),
            self.to.strftime("%H:%M"),
            self.zone_name
        )
    }

    /// How long one window lasts on an ordinary day (no clock change).
    pub fn nominal_length(&self) -> std::time::Duration {
        let minutes = |t: Time| i64::from(t.hour()) * 60 + i64::from(t.minute());
        let mut length = minutes(self.to) - minutes(self.from);
        if length <= 0 {
            length += 24 * 60;
        }
        std::time::Duration::from_secs(u64::try_from(length).unwrap_or(0) * 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(days: &[Weekday], from: &str, to: &str, zone: &str) -> Hours {
        Hours {
            days: days.to_vec(),
            from: from.parse().unwrap(),
            to: to.parse().unwrap(),
            timezone: TimeZone::get(zone).unwrap(),
            zone_name: zone.to_owned(),
        }
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    const WEEKEND: &[Weekday] = &[Weekday::Saturday, Weekday::Sunday];
    const EVERY_DAY: &[Weekday] = &[
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
        Weekday::Saturday,
        Weekday::Sunday,
    ];

    #[test]
    fn inside_the_hours_of_the_named_days_only() {
        let h = hours(WEEKEND, "02:00", "05:00", "Europe/Stockholm");
        // Saturday 2026-12-05, CET (UTC+1): 02:00 local is 01:00Z.
        assert!(!h.contains(at("2026-12-05T00:59:59Z")));
        assert!(h.contains(at("2026-12-05T01:00:00Z")));
        assert!(h.contains(at("2026-12-05T03:59:59Z")));
        assert!(!h.contains(at("2026-12-05T04:00:00Z")));
        // Friday is not named.
        assert!(!h.contains(at("2026-12-04T02:00:00Z")));
        assert_eq!(
            h.next_open(at("2026-12-02T12:00:00Z")),
            Some(at("2026-12-05T01:00:00Z"))
        );
        assert_eq!(
            h.next_open(at("2026-12-05T02:00:00Z")),
            Some(at("2026-12-05T02:00:00Z"))
        );
        // After Sunday's window: the next Saturday.
        assert_eq!(
            h.next_open(at("2026-12-06T05:00:00Z")),
            Some(at("2026-12-12T01:00:00Z"))
        );
    }

    #[test]
    fn a_window_past_midnight_belongs_to_the_day_it_starts() {
        let h = hours(&[Weekday::Friday], "22:00", "04:00", "UTC");
        assert!(h.contains(at("2026-12-04T23:00:00Z")));
        // Saturday 03:00 is Friday's window.
        assert!(h.contains(at("2026-12-05T03:00:00Z")));
        assert!(!h.contains(at("2026-12-05T22:30:00Z")));
        assert!(!h.contains(at("2026-12-04T03:00:00Z")));
        assert_eq!(h.nominal_length(), std::time::Duration::from_secs(6 * 3600));
    }

    /// Clocks go back in Stockholm on 2026-10-25 at 03:00 CEST to 02:00 CET: 02:00-03:00
    /// happens twice. A window 02:00-03:00 opens once (at the first 02:00) and closes once
    /// (at the only 03:00, after the second pass), and a window ending at 02:30 closes at
    /// the first 02:30 and does not open again for the second.
    #[test]
    fn the_night_clocks_go_back_opens_and_closes_each_window_once() {
        let h = hours(EVERY_DAY, "02:00", "03:00", "Europe/Stockholm");
        let first_two = at("2026-10-25T00:00:00Z"); // 02:00 CEST
        let only_three = at("2026-10-25T02:00:00Z"); // 03:00 CET
        assert_eq!(h.window_around(first_two), Some((first_two, only_three)));
        // The second 02:30 (01:30Z, CET) is still the same window.
        assert_eq!(
            h.window_around(at("2026-10-25T01:30:00Z")),
            Some((first_two, only_three))
        );
        assert!(!h.contains(only_three));

        let h = hours(EVERY_DAY, "01:00", "02:30", "Europe/Stockholm");
        let close = at("2026-10-25T00:30:00Z"); // the first 02:30, CEST
        assert!(h.contains(at("2026-10-25T00:29:59Z")));
        assert!(!h.contains(close));
        // The second 02:30 comes by (01:30Z): no second opening.
        assert!(!h.contains(at("2026-10-25T01:15:00Z")));
        assert!(!h.contains(at("2026-10-25T01:45:00Z")));
        assert_eq!(
            h.next_open(close),
            Some(at("2026-10-26T00:00:00Z")) // Monday 01:00 CET
        );
    }

    /// Clocks go forward on 2026-03-29 at 02:00 CET to 03:00 CEST: 02:30 does not exist. The
    /// window opens at the first instant after the gap, once.
    #[test]
    fn the_night_clocks_go_forward_opens_after_the_gap() {
        let h = hours(EVERY_DAY, "02:30", "04:00", "Europe/Stockholm");
        let open = at("2026-03-29T01:30:00Z"); // 03:30 CEST: 02:30 moved past the gap
        assert!(!h.contains(at("2026-03-29T01:29:59Z")));
        assert!(h.contains(open));
        assert!(h.contains(at("2026-03-29T01:59:59Z")));
        assert!(!h.contains(at("2026-03-29T02:00:00Z"))); // 04:00 CEST
        assert_eq!(h.next_open(at("2026-03-29T00:00:00Z")), Some(open));
    }

    #[test]
    fn describes_itself() {
        assert_eq!(
            hours(WEEKEND, "02:00", "05:00", "Europe/Stockholm").describe(),
            "sat,sun 02:00-05:00 Europe/Stockholm"
        );
        assert_eq!(
            hours(EVERY_DAY, "22:00", "04:00", "UTC").describe(),
            "every day 22:00-04:00 UTC"
        );
    }
}
