//! Where a schedule's cron times meet a daylight-saving change: a start or end that falls in
//! a gap (the wall-clock time does not exist that day) or an overlap (it happens twice).
//! `check` warns about them; croner's search handles both (a fixed time of day in a gap
//! happens once, just after it; other expressions' times in a gap not at all; a time in an
//! overlap once, at its first occurrence: see [`CronExpr`]).

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use super::cron::CronExpr;

/// One DST change a cron expression meets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DstMeeting {
    /// The wall-clock range that is skipped (gap) or repeated (overlap): `[from, to)`.
    pub from: DateTime,
    pub to: DateTime,
    /// `true`: the clocks go forward and the range does not exist; `false`: they go back and
    /// it happens twice.
    pub gap: bool,
    /// Whether the expression is one fixed time of day ([`CronExpr::fixed_time`]): such a
    /// time in a gap happens just after it; the times of any other expression in a gap
    /// do not happen that day.
    pub fixed_time: bool,
}

impl DstMeeting {
    /// `falls in the DST gap of Europe/Stockholm on 2027-03-28 (02:00-03:00 does not exist)`.
    pub fn describe(&self, zone_name: &str) -> String {
        let range = format!(
            "{}-{}",
            self.from.strftime("%H:%M"),
            self.to.strftime("%H:%M")
        );
        if self.gap {
            format!(
                "falls in the DST gap of {zone_name} on {} ({range} does not exist): {}",
                self.from.date(),
                if self.fixed_time {
                    "it happens once, just after the gap"
                } else {
                    "its times inside the gap do not happen that day (give one fixed time, such as `30 2 * * *`, to have it just after the gap)"
                }
            )
        } else {
            format!(
                "falls in the DST overlap of {zone_name} on {} ({range} happens twice): it happens once, at the first",
                self.from.date()
            )
        }
    }
}

/// The DST changes of `zone` from `from` for `within` whose skipped or repeated minutes
/// `cron` matches.
pub fn meetings(
    cron: &CronExpr,
    zone: &TimeZone,
    from: Timestamp,
    within: SignedDuration,
) -> Vec<DstMeeting> {
    let until = from.checked_add(within).unwrap_or(Timestamp::MAX);
    let mut found = Vec::new();
    for transition in zone.following(from) {
        let at = transition.timestamp();
        if at > until {
            break;
        }
        let before = zone.to_offset(at.checked_sub(SignedDuration::from_secs(1)).unwrap_or(at));
        let after = transition.offset();
        if before == after {
            continue;
        }
        let (start, end) = (before.to_datetime(at), after.to_datetime(at));
        let (range_from, range_to, gap) = if end > start {
            (start, end, true)
        } else {
            (end, start, false)
        };
        let mut minute = range_from;
        let mut hit = false;
        while minute < range_to {
            if cron.matches_civil(minute) {
                hit = true;
                break;
            }
            match minute.checked_add(SignedDuration::from_mins(1)) {
                Ok(next) => minute = next,
                Err(_) => break,
            }
        }
        if hit {
            found.push(DstMeeting {
                from: range_from,
                to: range_to,
                gap,
                fixed_time: cron.fixed_time(),
            });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    const TWO_YEARS: SignedDuration = SignedDuration::from_hours(2 * 366 * 24);

    #[test]
    fn stockholm_gap_and_overlap() {
        let from: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        let gap = meetings(
            &CronExpr::parse("30 2 * * *").unwrap(),
            &zone("Europe/Stockholm"),
            from,
            TWO_YEARS,
        );
        // Every spring gap (02:00-03:00) and every autumn overlap (02:00-03:00).
        assert_eq!(gap.len(), 4, "{gap:?}");
        assert!(gap[0].gap);
        assert_eq!(gap[0].from.to_string(), "2027-03-28T02:00:00");
        assert!(
            gap[0]
                .describe("Europe/Stockholm")
                .contains("02:00-03:00 does not exist")
        );
        assert!(!gap[1].gap);
        assert_eq!(gap[1].from.to_string(), "2027-10-31T02:00:00");
        let office = meetings(
            &CronExpr::parse("0 8 * * 1-5").unwrap(),
            &zone("Europe/Stockholm"),
            from,
            TWO_YEARS,
        );
        assert!(office.is_empty());
    }

    #[test]
    fn new_york_overlap_on_a_sunday_only() {
        let from: Timestamp = "2026-06-01T00:00:00Z".parse().unwrap();
        let sunday = meetings(
            &CronExpr::parse("30 1 * * 0").unwrap(),
            &zone("America/New_York"),
            from,
            TWO_YEARS,
        );
        // 2026-11-01 (a Sunday) 01:00-02:00 happens twice; the spring gap is 02:00-03:00.
        assert_eq!(sunday.len(), 2, "{sunday:?}");
        assert!(!sunday[0].gap);
        assert_eq!(sunday[0].from.to_string(), "2026-11-01T01:00:00");
        let weekdays = meetings(
            &CronExpr::parse("30 1 * * 1-5").unwrap(),
            &zone("America/New_York"),
            from,
            TWO_YEARS,
        );
        assert!(weekdays.is_empty(), "{weekdays:?}");
    }
}
