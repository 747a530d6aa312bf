//! Five-field cron expressions in a real time zone, for `[[schedules]]`.
//!
//! Parsing and the search through time are croner's (Vixie-cron semantics: day of week
//! 0-7 with 0 and 7 Sunday, names like `mon-fri`; a day-of-month and a day-of-week
//! restriction together mean either, as in Vixie cron; DST-aware searches that never
//! skip or double an occurrence). croner's own `jiff` backend is for jiff 0.2; this file
//! gives it jiff 1 through its public [`CronDateTime`] trait, so the project keeps one
//! time crate.

use std::cmp::Ordering;
use std::fmt;

use croner::parser::{CronParser, Seconds, Year};
use croner::{CivilDate, CivilDateTime, CivilTime, CronDateTime, Resolution, Weekday};
use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp, ZonedDateTime as Zoned};

/// A parsed five-field cron expression (minute hour day-of-month month day-of-week).
#[derive(Clone)]
pub struct CronExpr {
    text: String,
    cron: croner::Cron,
}

impl fmt::Debug for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CronExpr({:?})", self.text)
    }
}

impl CronExpr {
    /// Parses exactly five fields; the error is croner's sentence.
    pub fn parse(text: &str) -> Result<Self, String> {
        let fields = text.split_whitespace().count();
        if fields != 5 {
            return Err(format!(
                "a cron expression has 5 fields (minute hour day-of-month month day-of-week), \
                 this one has {fields}"
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(text)
            .map_err(|error| error.to_string())?;
        let expr = Self {
            text: text.to_owned(),
            cron,
        };
        if !expr.ever_fires() {
            return Err(
                "it never fires: no date matches its day of month and month (such as 30 or 31 \
                 February)"
                    .to_owned(),
            );
        }
        Ok(expr)
    }

    /// Whether the expression fires at all: searched from the start of four consecutive
    /// years (croner searches about a year ahead; 29 February comes every four).
    fn ever_fires(&self) -> bool {
        (2028..2032).any(|year| {
            let Ok(start) = format!("{year}-01-01T00:00:00Z").parse::<Timestamp>() else {
                return false;
            };
            let start = Z(start.to_zoned_datetime(TimeZone::UTC));
            self.cron.find_next_occurrence(&start, true).is_ok()
        })
    }

    /// The expression as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The latest occurrence at or before `at` in `zone` (searching at most about a
    /// year back, croner's limit).
    ///
    /// A wall-clock time that happens twice (an autumn overlap) is one occurrence, at its
    /// first instant, whatever the expression: croner repeats it for an expression with
    /// several times (`*/30 1 * * *`), and a repeat would be a second window opening.
    pub fn previous(&self, at: Timestamp, zone: &TimeZone) -> Option<Timestamp> {
        let start = Z(at.to_zoned_datetime(zone.clone()));
        let found = self.cron.find_previous_occurrence(&start, true).ok()?.0;
        Some(first_of_fold(&found, zone))
    }

    /// The first occurrence strictly after `at` in `zone` (the repeat of a wall-clock
    /// time in an overlap is not one, as for [`previous`](Self::previous)).
    pub fn next_after(&self, at: Timestamp, zone: &TimeZone) -> Option<Timestamp> {
        let mut start = Z(at.to_zoned_datetime(zone.clone()));
        // An overlap is an hour or two: a few repeats at most.
        for _ in 0..240 {
            let found = self.cron.find_next_occurrence(&start, false).ok()?.0;
            if first_of_fold(&found, zone) == found.timestamp() {
                return Some(found.timestamp());
            }
            start = Z(found);
        }
        None
    }

    /// Whether croner treats the expression as a fixed time of day (one minute, one hour):
    /// such a time inside a spring gap happens once, just after it; any other expression's
    /// times inside a gap do not happen that day.
    pub fn fixed_time(&self) -> bool {
        self.cron.determine_job_type() == croner::JobType::FixedTime
    }

    /// Whether the wall-clock minute `civil` matches (ignoring whether that minute exists
    /// in a zone): how `check` finds a start inside a DST gap or overlap.
    pub fn matches_civil(&self, civil: DateTime) -> bool {
        self.cron.is_time_matching(&Civil(civil)).unwrap_or(false)
    }
}

/// The first instant with `zoned`'s wall-clock time in `zone` (itself but in an overlap's
/// second half).
fn first_of_fold(zoned: &Zoned, zone: &TimeZone) -> Timestamp {
    zone.to_ambiguous_timestamp(zoned.datetime())
        .earlier()
        .map_or(zoned.timestamp(), |first| first.min(zoned.timestamp()))
}

/// A zoned instant, as croner searches it.
#[derive(Clone)]
struct Z(Zoned);

/// A wall-clock time with no zone (every time exists once).
#[derive(Clone)]
struct Civil(DateTime);

fn to_civil(datetime: DateTime) -> CivilDateTime {
    // jiff keeps every part in range.
    CivilDateTime::new(
        CivilDate::from_parts_unchecked(
            i32::from(datetime.year()),
            u32::try_from(datetime.month()).unwrap_or(1),
            u32::try_from(datetime.day()).unwrap_or(1),
        ),
        CivilTime::from_parts_unchecked(
            u32::try_from(datetime.hour()).unwrap_or(0),
            u32::try_from(datetime.minute()).unwrap_or(0),
            u32::try_from(datetime.second()).unwrap_or(0),
        ),
    )
}

fn to_jiff(civil: CivilDateTime) -> Result<DateTime, croner::errors::CronError> {
    let invalid = || croner::errors::CronError::InvalidDate;
    let part = |value: u32| i8::try_from(value).map_err(|_| invalid());
    DateTime::new(
        i16::try_from(civil.year()).map_err(|_| invalid())?,
        part(civil.month())?,
        part(civil.day())?,
        part(civil.hour())?,
        part(civil.minute())?,
        part(civil.second())?,
        0,
    )
    .map_err(|_| invalid())
}

fn to_weekday(weekday: jiff::civil::Weekday) -> Weekday {
    Weekday::from_days_from_sunday(u32::from(weekday.to_sunday_zero_offset().unsigned_abs()))
}

impl CronDateTime for Z {
    fn to_civil(&self) -> CivilDateTime {
        to_civil(self.0.datetime())
    }

    fn civil_weekday(&self) -> Weekday {
        to_weekday(self.0.weekday())
    }

    fn resolve_civil(
        &self,
        civil: CivilDateTime,
    ) -> Result<Resolution<Self>, croner::errors::CronError> {
        let invalid = |_| croner::errors::CronError::InvalidTime;
        let ambiguous = self
            .0
            .time_zone()
            .to_ambiguous_zoned_datetime(to_jiff(civil)?);
        Ok(match ambiguous.offset() {
            AmbiguousOffset::Unambiguous { .. } => {
                Resolution::Single(Z(ambiguous.unambiguous().map_err(invalid)?))
            }
            AmbiguousOffset::Fold { .. } => Resolution::Ambiguous(
                Z(ambiguous.clone().earlier().map_err(invalid)?),
                Z(ambiguous.later().map_err(invalid)?),
            ),
            AmbiguousOffset::Gap { .. } => Resolution::Gap,
        })
    }

    fn checked_add_seconds(&self, seconds: i64) -> Option<Self> {
        self.0
            .checked_add(SignedDuration::from_secs(seconds))
            .ok()
            .map(Z)
    }

    fn cmp_instant(&self, other: &Self) -> Ordering {
        self.0.timestamp().cmp(&other.0.timestamp())
    }
}

impl CronDateTime for Civil {
    fn to_civil(&self) -> CivilDateTime {
        to_civil(self.0)
    }

    fn civil_weekday(&self) -> Weekday {
        to_weekday(self.0.weekday())
    }

    fn resolve_civil(
        &self,
        civil: CivilDateTime,
    ) -> Result<Resolution<Self>, croner::errors::CronError> {
        Ok(Resolution::Single(Civil(to_jiff(civil)?)))
    }

    fn checked_add_seconds(&self, seconds: i64) -> Option<Self> {
        self.0
            .checked_add(SignedDuration::from_secs(seconds))
            .ok()
            .map(Civil)
    }

    fn cmp_instant(&self, other: &Self) -> Ordering {
        self.0.cmp(&other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    /// An expression no date ever matches is refused; 29 February (every four years) is not.
    #[test]
    fn an_expression_that_never_fires_is_refused() {
        for never in ["0 8 30 2 *", "0 8 31 4 *", "0 0 31 2,4,6 *"] {
            let error = CronExpr::parse(never).unwrap_err();
            assert!(error.contains("never fires"), "{never}: {error}");
        }
        for sometimes in ["0 8 29 2 *", "0 8 31 2 1", "0 8 31 1-12 *"] {
            assert!(CronExpr::parse(sometimes).is_ok(), "{sometimes}");
        }
    }

    #[test]
    fn five_fields_only() {
        assert!(CronExpr::parse("0 8 * * 1-5").is_ok());
        assert!(CronExpr::parse("0 0 8 * * 1-5").is_err());
        assert!(CronExpr::parse("0 8 * *").is_err());
        assert!(CronExpr::parse("61 8 * * *").is_err());
    }

    #[test]
    fn weekdays_are_vixie_numbers() {
        // 2026-12-04 is a Friday; 1-5 is Monday to Friday.
        let zone = TimeZone::get("Europe/Stockholm").unwrap();
        let cron = CronExpr::parse("0 8 * * 1-5").unwrap();
        let next = cron
            .next_after(at("2026-12-04T08:00:00+01:00"), &zone)
            .unwrap();
        assert_eq!(next, at("2026-12-07T08:00:00+01:00"), "Monday");
        let prev = cron
            .previous(at("2026-12-06T12:00:00+01:00"), &zone)
            .unwrap();
        assert_eq!(prev, at("2026-12-04T08:00:00+01:00"), "Friday");
    }

    #[test]
    fn a_start_in_the_spring_gap_happens_once_after_it() {
        // Stockholm 2027-03-28: 02:00 -> 03:00.
        let zone = TimeZone::get("Europe/Stockholm").unwrap();
        let cron = CronExpr::parse("30 2 * * *").unwrap();
        let next = cron
            .next_after(at("2027-03-28T00:00:00+01:00"), &zone)
            .unwrap();
        assert!(next > at("2027-03-28T00:00:00+01:00"));
        assert!(next < at("2027-03-29T00:00:00+02:00"), "{next}");
        let after = cron.next_after(next, &zone).unwrap();
        assert_eq!(after, at("2027-03-29T02:30:00+02:00"));
    }

    #[test]
    fn a_start_in_the_autumn_overlap_happens_once() {
        // New York 2026-11-01: 02:00 EDT -> 01:00 EST; 01:30 happens twice.
        let zone = TimeZone::get("America/New_York").unwrap();
        let cron = CronExpr::parse("30 1 * * *").unwrap();
        let first = cron
            .next_after(at("2026-11-01T00:00:00-04:00"), &zone)
            .unwrap();
        assert_eq!(first, at("2026-11-01T01:30:00-04:00"));
        let second = cron.next_after(first, &zone).unwrap();
        assert_eq!(second, at("2026-11-02T01:30:00-05:00"));
    }

    #[test]
    fn an_overlap_repeats_no_time_of_an_expression_with_several() {
        // New York 2026-11-01: 01:00-02:00 happens twice; croner would repeat 01:00 and
        // 01:30 for this expression.
        let zone = TimeZone::get("America/New_York").unwrap();
        let cron = CronExpr::parse("*/30 1 * * *").unwrap();
        assert!(!cron.fixed_time());
        assert!(CronExpr::parse("30 1 * * *").unwrap().fixed_time());
        let mut at_ = at("2026-11-01T00:00:00-04:00");
        let mut seen = Vec::new();
        for _ in 0..3 {
            at_ = cron.next_after(at_, &zone).unwrap();
            seen.push(at_);
        }
        assert_eq!(
            seen,
            [
                at("2026-11-01T01:00:00-04:00"),
                at("2026-11-01T01:30:00-04:00"),
                at("2026-11-02T01:00:00-05:00"),
            ]
        );
        // In the second pass the latest opening is still the first 01:30.
        assert_eq!(
            cron.previous(at("2026-11-01T01:45:00-05:00"), &zone),
            Some(at("2026-11-01T01:30:00-04:00"))
        );
    }
}
