//! Reading and validating `[scale_down]`, in the loader's way: every problem reported with
//! its file, line and column, the section refused with the file.

use std::collections::HashMap;

use toml_span::Span;
use toml_span::value::{Value, ValueInner};

use super::hours::{DAY_NAMES, Hours};
use super::load::{Loader, RawLadder, article};
use super::scale_down::ScaleDown;

const CONTEXT: &str = "[scale_down]";
const KEYS: &[&str] = &[
    "instances",
    "quiet_for",
    "after_up",
    "after_down",
    "check_every",
    "window",
    "memory_headroom",
    "min_plan",
    "memory_limits",
    "hours",
];
const HOURS_KEYS: &[&str] = &["days", "from", "to", "timezone"];

impl Loader<'_> {
    /// `[scale_down]`; `None` when it is invalid (the errors say why).
    pub(super) fn scale_down(
        &mut self,
        value: Value<'_>,
        ladders: &[RawLadder],
    ) -> Option<ScaleDown> {
        let mut table = self.table(value, CONTEXT, "[scale_down]")?;
        let errors_before = self.errors_len();
        let mut section = ScaleDown::with_defaults();
        if let Some(value) = table.remove("instances")
            && let Some(selectors) = self.selectors(value, CONTEXT)
        {
            section.selectors = selectors;
        }
        for (key, slot) in [
            ("quiet_for", &mut section.quiet_for),
            ("after_up", &mut section.after_up),
            ("after_down", &mut section.after_down),
        ] {
            if let Some(value) = table.remove(key)
                && let Some(duration) = self.duration(value, CONTEXT, key)
            {
                *slot = duration;
            }
        }
        // Both start valid (the defaults); one written but refused is not compared with the
        // other, or the user would read about a default they never wrote.
        let (mut check_valid, mut window_valid) = (true, true);
        let check_every = table.remove("check_every").map(|v| (v.span, v));
        let check_span = check_every.as_ref().map(|(span, _)| *span);
        if let Some((span, value)) = check_every {
            match self.duration(value, CONTEXT, "check_every") {
                Some(every) if every.is_zero() => {
                    self.error(
                        span,
                        Some(CONTEXT),
                        "`check_every` must be more than zero: it is how often an instance above its floor is looked at",
                    );
                    check_valid = false;
                }
                Some(every) => section.check_every = every,
                None => check_valid = false,
            }
        }
        let window = table.remove("window").map(|v| (v.span, v));
        let window_span = window.as_ref().map(|(span, _)| *span);
        if let Some((_, value)) = window {
            match self.duration(value, CONTEXT, "window") {
                Some(window) => section.window = window,
                None => window_valid = false,
            }
        }
        if check_valid && window_valid && section.window < section.check_every.saturating_mul(2) {
            let span = window_span.or(check_span).unwrap_or(Span::new(0, 0));
            self.error(
                span,
                Some(CONTEXT),
                format!(
                    "window {} is shorter than two check_every (2 × {} = {}): a step down needs at least two looks in the window; lengthen `window` or shorten `check_every`",
                    crate::duration::display(section.window),
                    crate::duration::display(section.check_every),
                    crate::duration::display(section.check_every.saturating_mul(2)),
                ),
            );
        }
        if let Some(value) = table.remove("memory_headroom") {
            let span = value.span;
            if let Some(headroom) = self.number(value, CONTEXT, "memory_headroom") {
                if (1.0..=100.0).contains(&headroom) {
                    section.memory_headroom = headroom;
                } else {
                    self.error(
                        span,
                        Some(CONTEXT),
                        format!(
                            "`memory_headroom` is {headroom}; it is a percentage of the smaller plan's memory limit, from 1 to 100 (60 leaves room for the next spike)"
                        ),
                    );
                }
            }
        }
        if let Some(value) = table.remove("min_plan")
            && let Some(plan) = self.plan_name(value, CONTEXT, "min_plan")
        {
            self.mention(&plan, format!("{CONTEXT}: min_plan"));
            if ladders
                .iter()
                .any(|ladder| ladder.plans.iter().any(|p| p.value == plan.value))
            {
                section.min_plan = Some(plan.value);
            } else {
                self.error(
                    plan.span,
                    Some(CONTEXT),
                    format!(
                        "min_plan {:?} is on no ladder, so no plan can be compared with it; use a plan of a ladder",
                        plan.value
                    ),
                );
            }
        }
        if let Some(value) = table.remove("memory_limits")
            && let Some(limits) = self.memory_limits(value, ladders)
        {
            section.memory_limits = limits;
        }
        let mut hours_span = None;
        if let Some(value) = table.remove("hours") {
            hours_span = Some(value.span);
            section.hours = self.hours(value);
        }
        self.unknown_keys(table, KEYS, Some(CONTEXT), "in [scale_down]");
        // The streak starts at the first passing look inside the hours and the step is made
        // at a look still inside them: hours no longer than the window never hold a whole one.
        if let (Some(hours), Some(span)) = (&section.hours, window_span.or(hours_span))
            && hours.nominal_length() <= section.window
        {
            self.warn(
                span,
                Some(CONTEXT),
                format!(
                    "the hours last {} and window is {}: a step down needs a whole window of passing looks inside the hours, so it can never happen; lengthen the hours or shorten the window",
                    crate::duration::display(hours.nominal_length()),
                    crate::duration::display(section.window)
                ),
            );
        }
        (self.errors_len() == errors_before).then_some(section)
    }

    /// `memory_limits = { "hare-1" = "3.2GiB" }`: sizes as strings or byte counts.
    fn memory_limits(
        &mut self,
        value: Value<'_>,
        ladders: &[RawLadder],
    ) -> Option<HashMap<String, u64>> {
        let table = self.table(value, CONTEXT, "`memory_limits`")?;
        let mut entries: Vec<_> = table.into_iter().collect();
        entries.sort_by_key(|(key, _)| key.span.start);
        let mut limits = HashMap::new();
        let mut valid = true;
        for (key, value) in entries {
            let plan = toml_span::Spanned::with_span(key.name.to_string(), key.span);
            self.mention(&plan, format!("{CONTEXT}: memory_limits"));
            if !ladders
                .iter()
                .any(|ladder| ladder.plans.iter().any(|p| p.value == plan.value))
            {
                self.warn(
                    plan.span,
                    Some(CONTEXT),
                    format!(
                        "memory_limits names {:?}, which is on no ladder: no step down goes to it",
                        plan.value
                    ),
                );
            }
            let bytes = match value.as_ref() {
                ValueInner::Integer(n) if *n > 0 => u64::try_from(*n).ok(),
                ValueInner::String(text) => text
                    .trim()
                    .parse::<bytesize::ByteSize>()
                    .ok()
                    .map(|size| size.as_u64())
                    .filter(|bytes| *bytes > 0),
                _ => None,
            };
            match bytes {
                Some(bytes) => {
                    limits.insert(plan.value, bytes);
                }
                None => {
                    self.error(
                        value.span,
                        Some(CONTEXT),
                        format!(
                            "the memory limit of {:?} must be a size above zero such as \"3.2GiB\" or \"3200MB\", or a number of bytes, not {}",
                            plan.value,
                            describe(value.as_ref())
                        ),
                    );
                    valid = false;
                }
            }
        }
        valid.then_some(limits)
    }

    /// `hours = { days = [...], from = "02:00", to = "05:00", timezone = "Europe/Stockholm" }`.
    fn hours(&mut self, value: Value<'_>) -> Option<Hours> {
        let span = value.span;
        let mut table = self.table(value, CONTEXT, "`hours`")?;
        let days = match table.remove("days") {
            None => Some(DAY_NAMES.iter().map(|(_, day)| *day).collect()),
            Some(value) => self.days(value, CONTEXT),
        };
        let from = match table.remove("from") {
            Some(value) => self.time_of_day(value, CONTEXT, "from"),
            None => {
                self.error(
                    span,
                    Some(CONTEXT),
                    "`hours` needs `from = \"HH:MM\"`, when the daily window opens",
                );
                None
            }
        };
        let to = match table.remove("to") {
            Some(value) => self.time_of_day(value, CONTEXT, "to"),
            None => {
                self.error(
                    span,
                    Some(CONTEXT),
                    "`hours` needs `to = \"HH:MM\"`, when the daily window closes",
                );
                None
            }
        };
        let zone = match table.remove("timezone") {
            None => Some(("UTC".to_owned(), jiff::tz::TimeZone::UTC)),
            // Not `?`: the unknown keys of `hours` are still reported.
            Some(value) => self.timezone(value, CONTEXT),
        };
        self.unknown_keys(table, HOURS_KEYS, Some(CONTEXT), "in `hours`");
        let (from, to) = (from?, to?);
        if from.value == to.value {
            self.error(
                to.span,
                Some(CONTEXT),
                "`hours` opens and closes at the same time; give a window, e.g. from = \"02:00\", to = \"05:00\" (to before from runs past midnight)",
            );
            return None;
        }
        let (zone_name, timezone) = zone?;
        Some(Hours {
            days: days?,
            from: from.value,
            to: to.value,
            timezone,
            zone_name,
        })
    }
}

fn describe(value: &ValueInner<'_>) -> String {
    match value {
        ValueInner::String(text) => format!("{text:?}"),
        ValueInner::Integer(n) => n.to_string(),
        other => article(other).to_owned(),
    }
}
