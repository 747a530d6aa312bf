//! Reading and validating `[limits]`, `[[freeze]]` and `[[schedules]]`, in the loader's way:
//! every problem reported with its file, line and column, the file refused whole.

use std::collections::HashSet;

use jiff::Timestamp;
use toml_span::Span;
use toml_span::value::{Value, ValueInner};

use super::cron::CronExpr;
use super::guard::{
    Freeze, FreezeWhen, Limits, MAX_CHANGES_COUNT, MaxChanges, Schedule, ScheduleEnd,
};
use super::hours::{DAY_NAMES, Hours};
use super::load::{Loader, RawLadder, article};
use crate::decide::Directions;

const LIMITS: &str = "[limits]";
const LIMITS_KEYS: &[&str] = &["max_changes", "max_monthly_price"];
const MAX_CHANGES_KEYS: &[&str] = &["count", "per"];
const FREEZE_KEYS: &[&str] = &["from", "to", "days", "timezone", "directions"];
const SCHEDULE_KEYS: &[&str] = &[
    "name",
    "instances",
    "timezone",
    "start",
    "end",
    "duration",
    "min_plan",
];

impl Loader<'_> {
    /// `[limits]`; the defaults (no limit) where it is invalid (the errors say why).
    pub(super) fn limits(&mut self, value: Value<'_>) -> Limits {
        let mut limits = Limits::default();
        let Some(mut table) = self.table(value, LIMITS, "[limits]") else {
            return limits;
        };
        if let Some(value) = table.remove("max_changes") {
            limits.max_changes = self.max_changes(value);
        }
        if let Some(value) = table.remove("max_monthly_price") {
            let span = value.span;
            match self.number(value, LIMITS, "max_monthly_price") {
                Some(price) if price > 0.0 => limits.max_monthly_price = Some(price),
                Some(price) => self.error(
                    span,
                    Some(LIMITS),
                    format!("`max_monthly_price` is {price}; it is a monthly price cap in USD, above zero"),
                ),
                None => {}
            }
        }
        self.unknown_keys(table, LIMITS_KEYS, Some(LIMITS), "in [limits]");
        limits
    }

    /// `max_changes = { count = 4, per = "24h" }`.
    fn max_changes(&mut self, value: Value<'_>) -> Option<MaxChanges> {
        let span = value.span;
        let mut table = self.table(value, LIMITS, "`max_changes`")?;
        let count = match table.remove("count") {
            None => {
                self.error(
                    span,
                    Some(LIMITS),
                    "`max_changes` needs `count`, how many changes per instance",
                );
                None
            }
            Some(value) => match value.as_ref() {
                ValueInner::Integer(n) if (1..=i64::from(MAX_CHANGES_COUNT)).contains(n) => {
                    u32::try_from(*n).ok()
                }
                other => {
                    let shown = match other {
                        ValueInner::Integer(n) => n.to_string(),
                        other => article(other).to_owned(),
                    };
                    self.error(
                        value.span,
                        Some(LIMITS),
                        format!(
                            "`max_changes.count` must be a whole number from 1 to {MAX_CHANGES_COUNT} (the daemon remembers that many changes per instance), not {shown}"
                        ),
                    );
                    None
                }
            },
        };
        let per = match table.remove("per") {
            None => {
                self.error(
                    span,
                    Some(LIMITS),
                    "`max_changes` needs `per`, the rolling window, e.g. \"24h\"",
                );
                None
            }
            Some(value) => {
                let span = value.span;
                match self.duration(value, LIMITS, "max_changes.per") {
                    Some(per) if per.is_zero() => {
                        self.error(
                            span,
                            Some(LIMITS),
                            "`max_changes.per` must be more than zero",
                        );
                        None
                    }
                    other => other,
                }
            }
        };
        self.unknown_keys(table, MAX_CHANGES_KEYS, Some(LIMITS), "in `max_changes`");
        Some(MaxChanges {
            count: count?,
            per: per?,
        })
    }

    /// `[[freeze]]` entries, in file order.
    pub(super) fn freezes(&mut self, mut value: Value<'_>) -> Vec<Freeze> {
        let span = value.span;
        let ValueInner::Array(items) = value.take() else {
            self.error(
                span,
                None,
                "freeze windows must be written as [[freeze]] tables",
            );
            return Vec::new();
        };
        let mut freezes = Vec::new();
        for (position, item) in items.into_iter().enumerate() {
            let ctx = format!("freeze #{}", position + 1);
            let item_span = item.span;
            if let Some(table) = self.table(item, &ctx, "a [[freeze]] entry")
                && let Some(freeze) = self.freeze(table, item_span, &ctx)
            {
                freezes.push(freeze);
            }
        }
        freezes
    }

    fn freeze(
        &mut self,
        mut table: toml_span::value::Table<'_>,
        span: Span,
        ctx: &str,
    ) -> Option<Freeze> {
        let errors_before = self.errors_len();
        let directions = match table.remove("directions") {
            None => Some(Directions::BOTH),
            Some(value) => self.directions(value, ctx),
        };
        let weekly = table.contains_key("days") || table.contains_key("timezone");
        let (from, to) = (table.remove("from"), table.remove("to"));
        let when = match (from, to) {
            (Some(from), Some(to)) if weekly => self.weekly_freeze(&mut table, from, to, ctx),
            (Some(from), Some(to)) => self.absolute_freeze(from, to, ctx),
            _ => {
                self.error(
                    span,
                    Some(ctx),
                    "a [[freeze]] needs either `from` and `to` as RFC 3339 times (e.g. \"2026-12-24T00:00:00+01:00\"), or `days`, `from` and `to` as \"HH:MM\" and `timezone`",
                );
                None
            }
        };
        self.unknown_keys(table, FREEZE_KEYS, Some(ctx), "in a [[freeze]]");
        let freeze = Freeze {
            when: when?,
            directions: directions?,
        };
        (self.errors_len() == errors_before).then_some(freeze)
    }

    fn absolute_freeze(&mut self, from: Value<'_>, to: Value<'_>, ctx: &str) -> Option<FreezeWhen> {
        let from = self.instant(from, ctx, "from");
        let to = self.instant(to, ctx, "to");
        let (from, to) = (from?, to?);
        if from.value >= to.value {
            self.error(
                to.span,
                Some(ctx),
                format!(
                    "the freeze ends ({}) before it starts ({}); `to` must be after `from`",
                    to.value, from.value
                ),
            );
            return None;
        }
        Some(FreezeWhen::Between {
            from: from.value,
            to: to.value,
        })
    }

    fn weekly_freeze(
        &mut self,
        table: &mut toml_span::value::Table<'_>,
        from: Value<'_>,
        to: Value<'_>,
        ctx: &str,
    ) -> Option<FreezeWhen> {
        let from_span = from.span;
        let days = match table.remove("days") {
            None => Some(DAY_NAMES.iter().map(|(_, day)| *day).collect()),
            Some(value) => self.days(value, ctx),
        };
        let from = self.time_of_day(from, ctx, "from");
        let to = self.time_of_day(to, ctx, "to");
        let zone = match table.remove("timezone") {
            Some(value) => self.timezone(value, ctx),
            None => {
                self.error(
                    from_span,
                    Some(ctx),
                    "a weekly [[freeze]] needs `timezone`, an IANA zone such as \"Europe/Stockholm\"",
                );
                None
            }
        };
        let (from, to) = (from?, to?);
        if from.value == to.value {
            self.error(
                to.span,
                Some(ctx),
                "the freeze starts and ends at the same time; give a window, e.g. from = \"16:00\", to = \"23:59\" (to before from runs past midnight)",
            );
            return None;
        }
        let (zone_name, timezone) = zone?;
        Some(FreezeWhen::Weekly(Hours {
            days: days?,
            from: from.value,
            to: to.value,
            timezone,
            zone_name,
        }))
    }

    /// An RFC 3339 instant, with its offset.
    fn instant(
        &mut self,
        value: Value<'_>,
        ctx: &str,
        key: &str,
    ) -> Option<toml_span::Spanned<Timestamp>> {
        let span = value.span;
        let text = match value.as_ref() {
            ValueInner::String(text) => text.to_string(),
            other => {
                self.error(
                    span,
                    Some(ctx),
                    format!("`{key}` must be an RFC 3339 time as a string, e.g. \"2026-12-24T00:00:00+01:00\", not {}", article(other)),
                );
                return None;
            }
        };
        match text.parse::<Timestamp>() {
            Ok(at) => Some(toml_span::Spanned::with_span(at, span)),
            Err(_) => {
                self.error(
                    span,
                    Some(ctx),
                    format!("`{key}` {text:?} is not an RFC 3339 time with an offset, e.g. \"2026-12-24T00:00:00+01:00\""),
                );
                None
            }
        }
    }

    /// `directions = ["up", "down"]`.
    fn directions(&mut self, mut value: Value<'_>, ctx: &str) -> Option<Directions> {
        let span = value.span;
        let ValueInner::Array(items) = value.take() else {
            self.error(
                span,
                Some(ctx),
                "`directions` must be a list: [\"up\"], [\"down\"] or [\"up\", \"down\"]",
            );
            return None;
        };
        let mut directions = Directions {
            up: false,
            down: false,
        };
        let mut valid = true;
        for item in items {
            match item.as_ref() {
                ValueInner::String(s) if s == "up" => directions.up = true,
                ValueInner::String(s) if s == "down" => directions.down = true,
                other => {
                    let shown = match other {
                        ValueInner::String(s) => format!("{s:?}"),
                        other => article(other).to_owned(),
                    };
                    self.error(
                        item.span,
                        Some(ctx),
                        format!("a `directions` entry is \"up\" or \"down\", not {shown}"),
                    );
                    valid = false;
                }
            }
        }
        if valid && !directions.up && !directions.down {
            self.error(span, Some(ctx), "`directions` is empty, so it holds nothing; list \"up\", \"down\" or both, or remove it for both");
            return None;
        }
        valid.then_some(directions)
    }

    /// `[[schedules]]` entries, in file order; `taken` holds the rule names (a change's
    /// `rule` carries a schedule's name, so they must differ).
    pub(super) fn schedules(
        &mut self,
        mut value: Value<'_>,
        ladders: &[RawLadder],
        taken: &HashSet<String>,
    ) -> Vec<Schedule> {
        let span = value.span;
        let ValueInner::Array(items) = value.take() else {
            self.error(
                span,
                None,
                "schedules must be written as [[schedules]] tables",
            );
            return Vec::new();
        };
        let mut schedules: Vec<Schedule> = Vec::new();
        for (position, item) in items.into_iter().enumerate() {
            let fallback = format!("schedule #{}", position + 1);
            let item_span = item.span;
            let Some(table) = self.table(item, &fallback, "a [[schedules]] entry") else {
                continue;
            };
            if let Some(schedule) =
                self.schedule(table, item_span, &fallback, ladders, taken, &schedules)
            {
                schedules.push(schedule);
            }
        }
        schedules
    }

    fn schedule(
        &mut self,
        mut table: toml_span::value::Table<'_>,
        span: Span,
        fallback: &str,
        ladders: &[RawLadder],
        taken: &HashSet<String>,
        before: &[Schedule],
    ) -> Option<Schedule> {
        let errors_before = self.errors_len();
        let name = match table.remove("name") {
            Some(value) => self.string(value, fallback, "name"),
            None => {
                self.error(
                    span,
                    Some(fallback),
                    "a [[schedules]] entry needs `name` (changes it makes carry it as their rule)",
                );
                None
            }
        };
        let ctx = name.as_ref().map_or_else(
            || fallback.to_owned(),
            |n| format!("schedule {:?}", n.value),
        );
        let ctx = ctx.as_str();
        if let Some(name) = &name {
            if before.iter().any(|s| s.name == name.value) {
                self.error(
                    name.span,
                    Some(ctx),
                    format!(
                        "two schedules are named {:?}; names must be unique",
                        name.value
                    ),
                );
            } else if taken.contains(&name.value) || name.value == crate::scale_down::RULE {
                self.error(
                    name.span,
                    Some(ctx),
                    format!("{:?} is already a rule's name; a schedule's changes carry its name as their rule, so pick another", name.value),
                );
            }
        }
        let selectors = match table.remove("instances") {
            Some(value) => self.selectors(value, ctx),
            None => Some(Vec::new()),
        };
        let zone = match table.remove("timezone") {
            Some(value) => self.timezone(value, ctx),
            None => {
                self.error(span, Some(ctx), "a schedule needs `timezone`, the IANA zone its cron times are in, e.g. \"Europe/Stockholm\"");
                None
            }
        };
        let start = match table.remove("start") {
            Some(value) => self.cron(value, ctx, "start"),
            None => {
                self.error(
                    span,
                    Some(ctx),
                    "a schedule needs `start`, a 5-field cron expression such as \"0 8 * * 1-5\"",
                );
                None
            }
        };
        let end = match (table.remove("end"), table.remove("duration")) {
            (Some(end), None) => self
                .cron(end, ctx, "end")
                .map(|c| ScheduleEnd::Cron(Box::new(c))),
            (None, Some(duration)) => {
                let span = duration.span;
                match self.duration(duration, ctx, "duration") {
                    Some(d) if d.is_zero() => {
                        self.error(span, Some(ctx), "`duration` must be more than zero");
                        None
                    }
                    other => other.map(ScheduleEnd::Duration),
                }
            }
            (Some(end), Some(_)) => {
                self.error(
                    end.span,
                    Some(ctx),
                    "a schedule has `end` or `duration`, not both",
                );
                None
            }
            (None, None) => {
                self.error(span, Some(ctx), "a schedule needs `end` (a cron expression) or `duration` (e.g. \"10h\") to say when its window closes");
                None
            }
        };
        let min_plan = match table.remove("min_plan") {
            Some(value) => self.plan_name(value, ctx, "min_plan").and_then(|plan| {
                self.mention(&plan, format!("{ctx}: min_plan"));
                if ladders.iter().any(|l| l.plans.iter().any(|p| p.value == plan.value)) {
                    Some(plan.value)
                } else {
                    self.error(
                        plan.span,
                        Some(ctx),
                        format!("min_plan {:?} is on no ladder, so no plan can be compared with it; use a plan of a ladder", plan.value),
                    );
                    None
                }
            }),
            None => {
                self.error(span, Some(ctx), "a schedule needs `min_plan`, the floor while its window is open");
                None
            }
        };
        self.unknown_keys(table, SCHEDULE_KEYS, Some(ctx), "in a [[schedules]] entry");
        let (zone_name, timezone) = zone?;
        let schedule = Schedule {
            name: name?.value,
            selectors: selectors?,
            timezone,
            zone_name,
            start: start?,
            end: end?,
            min_plan: min_plan?,
        };
        (self.errors_len() == errors_before).then_some(schedule)
    }

    fn cron(&mut self, value: Value<'_>, ctx: &str, key: &str) -> Option<CronExpr> {
        let text = self.string(value, ctx, key)?;
        match CronExpr::parse(&text.value) {
            Ok(cron) => Some(cron),
            Err(why) => {
                self.error(
                    text.span,
                    Some(ctx),
                    format!("`{key}` {:?} is not a cron expression: {why}", text.value),
                );
                None
            }
        }
    }
}
