//! `[alarms.<type>]`: how `setup` configures the CloudAMQP alarm of one type, read in the
//! loader's way (every problem with its file, line and column, unknown keys refused with a
//! "did you mean").
//!
//! ```toml
//! [alarms.memory]
//! time_threshold = "5m"      # the value must hold this long before CloudAMQP sends it
//! reminder_interval = "15m"  # resend while it stays high; "0s" = never
//! ```

use std::collections::HashMap;
use std::time::Duration;

use toml_span::value::Value;

use super::ALARM_TYPES;
use super::load::{Loader, closest, quoted};
use super::scale_down::ScaleDown;

const KEYS: &[&str] = &["time_threshold", "reminder_interval"];

/// `time_threshold` when `[alarms.<type>]` sets none: how long CloudAMQP waits for a value
/// to hold before it sends the alarm.
pub const DEFAULT_TIME_THRESHOLD: Duration = Duration::from_secs(5 * 60);

/// One `[alarms.<type>]` section as written; `None`: not set, `setup` takes its default
/// (`time_threshold` [`DEFAULT_TIME_THRESHOLD`]; `reminder_interval` the longest cooldown of
/// the type's rules, with `[scale_down]` at most half its `quiet_for`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlarmSettings {
    /// Whole seconds the value must hold before CloudAMQP sends the alarm.
    pub time_threshold: Option<Duration>,
    /// Whole seconds between reminders while the alarm holds; zero means never.
    pub reminder_interval: Option<Duration>,
}

impl Loader<'_> {
    /// `[alarms]`: one table per known alarm type. Invalid sections are left out (the errors
    /// say why). Warns, while `[scale_down]` is present, about a `reminder_interval` that is 0
    /// or not shorter than `quiet_for`: an alarm that stays high would then go quiet, and
    /// the daemon could take the quiet for the end of the spike.
    pub(super) fn alarm_sections(
        &mut self,
        value: Value<'_>,
        scale_down: Option<&ScaleDown>,
    ) -> HashMap<String, AlarmSettings> {
        let mut sections = HashMap::new();
        let Some(table) = self.table(value, "[alarms]", "[alarms]") else {
            return sections;
        };
        let mut entries: Vec<_> = table.into_iter().collect();
        entries.sort_by_key(|(key, _)| key.span.start);
        for (key, value) in entries {
            let kind = key.name.to_string();
            let ctx = format!("[alarms.{kind}]");
            if !ALARM_TYPES.contains(&kind.as_str()) {
                let hint = match closest(&kind.to_lowercase(), ALARM_TYPES.iter().copied()) {
                    Some(near) => format!("did you mean {near:?}?"),
                    None => format!("use one of {}", quoted(ALARM_TYPES)),
                };
                self.error(
                    key.span,
                    Some(&ctx),
                    format!("unknown alarm type {kind:?}; {hint}"),
                );
                continue;
            }
            let Some(mut section) = self.table(value, &ctx, &ctx) else {
                continue;
            };
            let errors_before = self.errors_len();
            let mut settings = AlarmSettings::default();
            if let Some(value) = section.remove("time_threshold") {
                settings.time_threshold = self.seconds(value, &ctx, "time_threshold");
            }
            let mut reminder_span = None;
            if let Some(value) = section.remove("reminder_interval") {
                reminder_span = Some(value.span);
                settings.reminder_interval = self.seconds(value, &ctx, "reminder_interval");
            }
            self.unknown_keys(section, KEYS, Some(&ctx), &format!("in {ctx}"));
            if let (Some(scale_down), Some(reminder), Some(span)) =
                (scale_down, settings.reminder_interval, reminder_span)
            {
                let display = crate::duration::display;
                if reminder.is_zero() {
                    self.warn(
                        span,
                        Some(&ctx),
                        format!(
                            "reminder_interval 0 means CloudAMQP says it once: while the alarm stays high nothing more comes, and after quiet_for {} [scale_down] may step the plan down in the middle of it; use at most half quiet_for ({})",
                            display(scale_down.quiet_for),
                            display(scale_down.quiet_for / 2)
                        ),
                    );
                } else if reminder >= scale_down.quiet_for {
                    self.warn(
                        span,
                        Some(&ctx),
                        format!(
                            "reminder_interval {} is not shorter than [scale_down] quiet_for {}: an alarm still high may stay silent long enough for a step down; use at most half quiet_for ({})",
                            display(reminder),
                            display(scale_down.quiet_for),
                            display(scale_down.quiet_for / 2)
                        ),
                    );
                }
            }
            if self.errors_len() == errors_before {
                sections.insert(kind, settings);
            }
        }
        sections
    }

    /// A duration CloudAMQP can take: whole seconds.
    fn seconds(&mut self, value: Value<'_>, ctx: &str, key: &str) -> Option<Duration> {
        let span = value.span;
        let duration = self.duration(value, ctx, key)?;
        if duration.subsec_nanos() != 0 {
            self.error(
                span,
                Some(ctx),
                format!(
                    "`{key}` is {}; CloudAMQP counts it in whole seconds, e.g. \"90s\" or \"5m\"",
                    crate::duration::display(duration)
                ),
            );
            return None;
        }
        Some(duration)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::rules::{AlarmSettings, RulesFailure, parse};

    const RULE: &str = "[ladders]\nsingle = [\"bunny-1\", \"hare-1\"]\n[[rules]]\nname = \"m\"\nalarm = \"memory\"\nabove = 80\nladder = \"single\"\n";

    fn errors(text: &str) -> Vec<String> {
        match parse("rules.toml", text) {
            Err(RulesFailure::Invalid { errors, .. }) => {
                errors.iter().map(ToString::to_string).collect()
            }
            other => panic!("expected errors, got {other:?}"),
        }
    }

    #[test]
    fn sections_are_read_and_absent_types_get_nothing() {
        let text = format!(
            "{RULE}[alarms.memory]\ntime_threshold = \"2m\"\nreminder_interval = \"0s\"\n[alarms.cpu]\n"
        );
        let rules = parse("rules.toml", &text).unwrap();
        assert_eq!(
            rules.alarm_settings("memory"),
            AlarmSettings {
                time_threshold: Some(Duration::from_secs(120)),
                reminder_interval: Some(Duration::ZERO),
            }
        );
        assert_eq!(rules.alarm_settings("cpu"), AlarmSettings::default());
        assert_eq!(rules.alarm_settings("disk"), AlarmSettings::default());
        assert!(rules.warnings().is_empty(), "{:?}", rules.warnings());
    }

    #[test]
    fn unknown_types_keys_and_bad_durations_are_errors_with_places() {
        let text = format!(
            "{RULE}[alarms.memroy]\n[alarms.cpu]\nreminder_intreval = \"5m\"\ntime_threshold = \"1.5s\"\n[alarms.disk]\nreminder_interval = 5\n"
        );
        let errors = errors(&text);
        assert_eq!(errors.len(), 4, "{errors:#?}");
        assert!(errors[0].starts_with("rules.toml:8:9: [alarms.memroy]: unknown alarm type \"memroy\"; did you mean \"memory\"?"), "{}", errors[0]);
        assert!(errors[1].starts_with("rules.toml:10:1: [alarms.cpu]: unknown key \"reminder_intreval\" in [alarms.cpu]; did you mean \"reminder_interval\"?"), "{}", errors[1]);
        assert!(errors[2].contains("whole seconds"), "{}", errors[2]);
        assert!(
            errors[3].contains("`reminder_interval` must be a string"),
            "{}",
            errors[3]
        );
    }

    #[test]
    fn reminders_that_let_scale_down_misread_a_spike_are_warned_about() {
        let text = format!(
            "{RULE}[scale_down]\nquiet_for = \"2h\"\n[alarms.memory]\nreminder_interval = \"0s\"\n[alarms.cpu]\nreminder_interval = \"2h\"\n[alarms.disk]\nreminder_interval = \"30m\"\n"
        );
        let rules = parse("rules.toml", &text).unwrap();
        let warnings: Vec<String> = rules.warnings().iter().map(ToString::to_string).collect();
        assert_eq!(warnings.len(), 2, "{warnings:#?}");
        assert!(
            warnings[0].contains("[alarms.memory]: reminder_interval 0"),
            "{}",
            warnings[0]
        );
        assert!(
            warnings[1].contains("[alarms.cpu]: reminder_interval 2h is not shorter"),
            "{}",
            warnings[1]
        );
        // Without [scale_down], 0 is a fine choice.
        let rules = parse(
            "rules.toml",
            &format!("{RULE}[alarms.memory]\nreminder_interval = \"0s\"\n"),
        )
        .unwrap();
        assert!(rules.warnings().is_empty());
    }
}
