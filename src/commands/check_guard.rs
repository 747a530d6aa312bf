//! `check`'s lines for the guardrails: `[limits]`, each `[[freeze]]`, and each schedule with
//! its next three openings in its zone and in UTC, and where its times meet a DST change.

use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use crate::rules::{RuleSet, Schedule, ScheduleEnd};

/// How far ahead `check` looks for DST changes a schedule's times meet.
const DST_AHEAD: SignedDuration = SignedDuration::from_hours(2 * 366 * 24);

/// The text lines, each starting with two spaces, then `warning:` lines for DST.
pub fn summary(rules: &RuleSet, now: Timestamp) -> String {
    let mut text = String::new();
    let limits = rules.limits();
    if limits.max_changes.is_some() || limits.max_monthly_price.is_some() {
        text += &format!("  limits: {}\n", describe_limits(rules));
    }
    for freeze in rules.freezes() {
        text += &format!("  freeze: {}\n", freeze.describe());
    }
    for schedule in rules.schedules() {
        text += &format!(
            "  schedule {}: {}, floor {} while open, {} -> {}\n",
            schedule.name,
            super::check::describe_instances(&schedule.selectors),
            schedule.min_plan,
            schedule.start.text(),
            describe_end(schedule),
        );
        for opening in schedule.next_openings(now, 3) {
            let local = opening.to_zoned_datetime(schedule.timezone.clone());
            let closes = schedule
                .closes(opening)
                .map(|t| {
                    t.to_zoned_datetime(schedule.timezone.clone())
                        .strftime("%Y-%m-%d %H:%M")
                        .to_string()
                })
                .unwrap_or_else(|| "never".into());
            text += &format!(
                "    opens {} {} ({opening}), closes {closes}\n",
                local.strftime("%a %Y-%m-%d %H:%M"),
                schedule.zone_name,
            );
        }
    }
    for warning in dst_warnings(rules, now) {
        text += &format!("warning: {warning}\n");
    }
    text
}

/// `max_changes 4 per 24h, max_monthly_price 3000` or `none`.
fn describe_limits(rules: &RuleSet) -> String {
    let limits = rules.limits();
    let mut parts = Vec::new();
    if let Some(max) = limits.max_changes {
        parts.push(format!(
            "max_changes {} per {} per instance",
            max.count,
            crate::duration::display(max.per)
        ));
    }
    if let Some(price) = limits.max_monthly_price {
        parts.push(format!("max_monthly_price {price}"));
    }
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

fn describe_end(schedule: &Schedule) -> String {
    match &schedule.end {
        ScheduleEnd::Cron(end) => end.text().to_owned(),
        ScheduleEnd::Duration(length) => format!("for {}", crate::duration::display(*length)),
    }
}

/// Every schedule time, and every weekly freeze's `from` and `to`, that meets a DST change
/// in the next two years.
pub fn dst_warnings(rules: &RuleSet, now: Timestamp) -> Vec<String> {
    let mut warnings = Vec::new();
    for (index, freeze) in rules.freezes().iter().enumerate() {
        let crate::rules::FreezeWhen::Weekly(hours) = &freeze.when else {
            continue;
        };
        for (key, cron) in freeze_times(hours) {
            if let Some(meeting) =
                crate::rules::dst_meetings(&cron, &hours.timezone, now, DST_AHEAD).first()
            {
                warnings.push(format!(
                    "freeze {} ({}): {key} {}",
                    index + 1,
                    hours.describe(),
                    meeting.describe(&hours.zone_name)
                ));
            }
        }
    }
    for schedule in rules.schedules() {
        let mut times = vec![("start", &schedule.start)];
        if let ScheduleEnd::Cron(end) = &schedule.end {
            times.push(("end", end));
        }
        for (key, cron) in times {
            if let Some(meeting) =
                crate::rules::dst_meetings(cron, &schedule.timezone, now, DST_AHEAD).first()
            {
                warnings.push(format!(
                    "schedule {:?}: {key} {:?} {}",
                    schedule.name,
                    cron.text(),
                    meeting.describe(&schedule.zone_name)
                ));
            }
        }
    }
    warnings
}

/// The JSON fields `limits`, `freezes` and `schedules`.
pub fn json(rules: &RuleSet, now: Timestamp) -> [(&'static str, serde_json::Value); 4] {
    let limits = rules.limits();
    [
        (
            "limits",
            json!({
                "max_changes": limits.max_changes.map(|m| json!({"count": m.count, "per": crate::duration::display(m.per)})),
                "max_monthly_price": limits.max_monthly_price,
            }),
        ),
        (
            "freezes",
            rules.freezes().iter().map(|f| json!({"summary": f.describe()})).collect(),
        ),
        (
            "schedules",
            rules
                .schedules()
                .iter()
                .map(|s| {
                    json!({
                        "name": s.name,
                        "instances": s.selectors.iter().map(|x| x.as_str()).collect::<Vec<_>>(),
                        "timezone": s.zone_name,
                        "start": s.start.text(),
                        "end": describe_end(s),
                        "min_plan": s.min_plan,
                        "next_openings": s.next_openings(now, 3).into_iter().map(|t| json!({
                            "local": t.to_zoned_datetime(s.timezone.clone()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
                            "utc": t,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        ),
        ("dst_warnings", json!(dst_warnings(rules, now))),
    ]
}

/// A weekly freeze's `from` and `to` as cron times on the days they happen (a `to` at or
/// before `from` is on the next day), for the DST check.
fn freeze_times(hours: &crate::rules::Hours) -> Vec<(&'static str, crate::rules::CronExpr)> {
    use jiff::civil::Weekday;
    let number = |day: Weekday| day.to_sunday_zero_offset();
    let list = |days: &mut dyn Iterator<Item = i8>| {
        days.map(|d| d.to_string()).collect::<Vec<_>>().join(",")
    };
    let from_days = list(&mut hours.days.iter().map(|d| number(*d)));
    let to_days = if hours.to <= hours.from {
        list(&mut hours.days.iter().map(|d| (number(*d) + 1) % 7))
    } else {
        from_days.clone()
    };
    [("from", hours.from, from_days), ("to", hours.to, to_days)]
        .into_iter()
        .filter_map(|(key, time, days)| {
            let text = format!("{} {} * * {days}", time.minute(), time.hour());
            crate::rules::CronExpr::parse(&text)
                .ok()
                .map(|cron| (key, cron))
        })
        .collect()
}
