//! The parts of a weekly window that `hours` of `[scale_down]` and a weekly `[[freeze]]`
//! both write: `days`, `"HH:MM"` times of day and an IANA `timezone`.

use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;
use toml_span::value::{Value, ValueInner};

use super::hours::DAY_NAMES;
use super::load::{Loader, article, closest, quoted};

impl Loader<'_> {
    /// An IANA zone name, with the zone.
    pub(super) fn timezone(&mut self, value: Value<'_>, ctx: &str) -> Option<(String, TimeZone)> {
        let name = self.string(value, ctx, "timezone")?;
        match TimeZone::get(&name.value) {
            Ok(zone) => Some((name.value, zone)),
            Err(_) => {
                self.error(
                    name.span,
                    Some(ctx),
                    format!(
                        "unknown time zone {:?}; use an IANA name such as \"Europe/Stockholm\", \"America/New_York\" or \"UTC\"",
                        name.value
                    ),
                );
                None
            }
        }
    }

    /// `days = ["sat", "sun"]`.
    pub(super) fn days(&mut self, mut value: Value<'_>, ctx: &str) -> Option<Vec<Weekday>> {
        let span = value.span;
        let names: Vec<&str> = DAY_NAMES.iter().map(|(name, _)| *name).collect();
        let ValueInner::Array(items) = value.take() else {
            self.error(
                span,
                Some(ctx),
                format!(
                    "`days` must be a list of days, e.g. [\"sat\", \"sun\"] (of {})",
                    quoted(&names)
                ),
            );
            return None;
        };
        if items.is_empty() {
            self.error(span, Some(ctx), "`days` is empty, so the window never opens; list days, or remove `days` for every day");
            return None;
        }
        let mut days = Vec::new();
        let mut valid = true;
        for item in items {
            let ValueInner::String(name) = item.as_ref() else {
                self.error(
                    item.span,
                    Some(ctx),
                    format!(
                        "a `days` entry must be a day such as \"sat\", not {}",
                        article(item.as_ref())
                    ),
                );
                valid = false;
                continue;
            };
            let text = toml_span::Spanned::with_span(name.to_string(), item.span);
            let lower = text.value.to_ascii_lowercase();
            match DAY_NAMES.iter().find(|(name, _)| *name == lower) {
                Some((_, day)) => {
                    if !days.contains(day) {
                        days.push(*day);
                    }
                }
                None => {
                    let hint = match closest(&lower, names.iter().copied()) {
                        Some(near) => format!("did you mean {near:?}?"),
                        None => format!("use {}", quoted(&names)),
                    };
                    self.error(
                        text.span,
                        Some(ctx),
                        format!("unknown day {:?}; {hint}", text.value),
                    );
                    valid = false;
                }
            }
        }
        valid.then_some(days)
    }

    /// `"HH:MM"`.
    pub(super) fn time_of_day(
        &mut self,
        value: Value<'_>,
        ctx: &str,
        key: &str,
    ) -> Option<toml_span::Spanned<Time>> {
        let text = self.string(value, ctx, key)?;
        let two_digits = |part: &str| part.len() == 2 && part.bytes().all(|b| b.is_ascii_digit());
        let parsed = match text.value.split_once(':') {
            Some((h, m)) if two_digits(h) && two_digits(m) => h
                .parse::<i8>()
                .ok()
                .zip(m.parse::<i8>().ok())
                .and_then(|(h, m)| Time::new(h, m, 0, 0).ok()),
            _ => None,
        };
        match parsed {
            Some(time) => Some(toml_span::Spanned::with_span(time, text.span)),
            None => {
                self.error(
                    text.span,
                    Some(ctx),
                    format!(
                        "`{key}` {:?} is not a time of day; write it as \"HH:MM\", e.g. \"02:00\"",
                        text.value
                    ),
                );
                None
            }
        }
    }
}
