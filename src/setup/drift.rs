//! PURE: how one instance's live alarms differ from what `setup` would make of them, for
//! `check --online` (warnings only: the rules stay valid).
//!
//! `check` does not know the webhook's URL, so it only asks that our recipient exist and
//! carry a token. An alarm reaches us when its recipients include ours or are `[]` (every
//! recipient); one that reaches us must be enabled and fire at least whenever a rule would.

use crate::cloudamqp::{AlarmConfig, InstanceSummary, Recipient};
use crate::rules::RuleSet;

use super::plan::{RECIPIENT_NAME, WantedAlarm, is_ours, wanted};

/// The drift warnings of one instance, each starting with `instance <id> <name>: `.
pub fn drift(
    rules: &RuleSet,
    instance: &InstanceSummary,
    is_shared: bool,
    recipients: &[Recipient],
    alarms: &[AlarmConfig],
) -> Vec<String> {
    let wanted = wanted(rules, instance, is_shared);
    let prefix = format!("instance {} {}", instance.id, instance.name);
    let mut warnings: Vec<String> = wanted
        .problems
        .iter()
        .map(|problem| format!("{prefix}: {problem}"))
        .collect();
    if wanted.alarms.is_empty() && !wanted.notice {
        return warnings;
    }
    let Some(ours) = recipients.iter().find(|r| is_ours(r)) else {
        warnings.push(format!(
            "{prefix}: no webhook recipient named {RECIPIENT_NAME}: CloudAMQP sends the daemon no alarm; run `cloudamqp-autoscaler setup --url URL --apply`"
        ));
        return warnings;
    };
    let value = ours.value.to_ascii_lowercase();
    if !(value.starts_with("https://") || value.starts_with("http://")) || !value.contains("token=")
    {
        warnings.push(format!(
            "{prefix}: recipient {RECIPIENT_NAME} {} has no http(s) URL with ?token=: the daemon refuses what it sends; run setup",
            ours.id
        ));
    }
    for alarm in &wanted.alarms {
        let reaching: Vec<&AlarmConfig> = alarms
            .iter()
            .filter(|a| a.kind == alarm.kind && a.reaches(ours.id))
            .collect();
        let enabled: Vec<&AlarmConfig> = reaching.iter().copied().filter(|a| a.enabled).collect();
        let rules = alarm
            .rules
            .iter()
            .map(|n| format!("{n:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        if enabled.is_empty() {
            warnings.push(match reaching.first() {
                Some(disabled) => format!(
                    "{prefix}: alarm {} {} is disabled: rules {rules} never hear it; run setup",
                    alarm.kind, disabled.id
                ),
                None => format!(
                    "{prefix}: no {} alarm reaches {RECIPIENT_NAME}: rules {rules} never hear it; run setup",
                    alarm.kind
                ),
            });
            continue;
        }
        // Ours (our recipient only) is the one setup keeps; else any alarm reaching us.
        let live = enabled
            .iter()
            .copied()
            .find(|a| a.recipients == [ours.id])
            .unwrap_or(enabled[0]);
        warnings.extend(
            differences(alarm, live)
                .into_iter()
                .map(|d| format!("{prefix}: alarm {} {}: {d}", alarm.kind, live.id)),
        );
    }
    warnings
}

/// Where `live` would miss alarms the rules act on, or differs from what setup sets.
fn differences(alarm: &WantedAlarm, live: &AlarmConfig) -> Vec<String> {
    let mut found = Vec::new();
    if let (Some(wanted), Some(actual)) = (alarm.value_threshold, live.value_threshold) {
        if alarm.kind == "disk" && actual < wanted {
            found.push(format!(
                "value_threshold {actual} fires only below {actual}, the rules act below {wanted}: alarms in between are never sent"
            ));
        } else if alarm.kind != "disk" && actual > wanted {
            found.push(format!(
                "value_threshold {actual} fires only above {actual}, the rules act above {wanted}: alarms in between are never sent"
            ));
        }
    }
    for (field, actual, wanted) in [
        ("time_threshold", live.time_threshold, alarm.time_threshold),
        (
            "reminder_interval",
            live.reminder_interval,
            alarm.reminder_interval,
        ),
    ] {
        if actual != Some(wanted) {
            let shown = actual.map_or_else(|| "none".to_owned(), |v| v.to_string());
            found.push(format!("{field} is {shown}, setup would set {wanted}"));
        }
    }
    found
}
