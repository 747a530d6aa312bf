//! PURE: what `setup` would do on one instance, from the rules and what CloudAMQP shows.
//!
//! ```text
//! (rules, instance, is_shared, live recipients, live alarms, webhook URL) -> InstancePlan
//! ```
//!
//! What the rules want (contract, Part 5): for each alarm type a rule selecting the instance
//! acts on, one alarm sent to our recipient only, with the threshold that makes it fire for
//! every such rule. Ours is the webhook recipient named [`RECIPIENT_NAME`], and an alarm is
//! ours when that recipient is its only recipient; nothing else is ever touched.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::cloudamqp::{AlarmConfig, AlarmSpec, InstanceSummary, Recipient};
use crate::rules::{
    ALARM_TYPES, DEFAULT_TIME_THRESHOLD, InstanceNames, Rule, RuleSet, Selector, Threshold,
};

/// The name of the webhook recipient `setup` creates and recognises.
pub const RECIPIENT_NAME: &str = "cloudamqp-autoscaler";

/// The alarm types CloudAMQP has only on dedicated plans (cloudamqp-api.md, "Plans").
pub const DEDICATED_ONLY: &[&str] = &["cpu", "memory", "disk", "netsplit", "server_unreachable"];

/// Shared plans by name, for an instance whose plan the catalogue does not list.
pub const KNOWN_SHARED_PLANS: &[&str] = &["lemur", "tiger", "lemming", "ermine"];

/// The `value_threshold` of a type whose rules have no threshold at all (they act on any
/// alarm of the type): the console's usual values, percent used for cpu and memory,
/// percent free for disk. The other threshold types (queue, connection, flow, consumer)
/// count things only the user knows: their rules need a threshold for `setup`.
fn default_threshold(kind: &str) -> Option<u64> {
    match kind {
        "cpu" | "memory" => Some(90),
        "disk" => Some(10),
        _ => None,
    }
}

/// Whether `selectors` pick the instance (an empty list picks every one).
pub fn picks(selectors: &[Selector], instance: &InstanceSummary) -> bool {
    let id = instance.id.to_string();
    let names = InstanceNames {
        id: Some(&id),
        uuid: instance.providerid.as_deref(),
        name: Some(&instance.name),
    };
    crate::rules::any_picks(selectors, &names)
}

/// The alarm the rules want for one type on one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedAlarm {
    pub kind: String,
    /// `None` for the types without one (netsplit, server_unreachable, ssh).
    pub value_threshold: Option<u64>,
    /// Seconds.
    pub time_threshold: u64,
    /// Seconds; 0 = never.
    pub reminder_interval: u64,
    /// The rules it serves, for messages.
    pub rules: Vec<String>,
}

impl WantedAlarm {
    /// The body of its `POST`/`PUT`, sent to `recipient` only.
    pub fn spec(&self, recipient: u64) -> AlarmSpec {
        AlarmSpec {
            kind: self.kind.clone(),
            value_threshold: self.value_threshold,
            time_threshold: self.time_threshold,
            reminder_interval: self.reminder_interval,
            recipients: vec![recipient],
            enabled: true,
        }
    }

    /// The fields of `live` that differ, as `field: old -> new`.
    pub fn differences(&self, live: &AlarmConfig) -> Vec<String> {
        let mut changes = Vec::new();
        let shown = |value: Option<u64>| value.map_or_else(|| "none".to_owned(), |v| v.to_string());
        if self.value_threshold.is_some() && live.value_threshold != self.value_threshold {
            changes.push(format!(
                "value_threshold: {} -> {}",
                shown(live.value_threshold),
                shown(self.value_threshold)
            ));
        }
        for (field, live_value, wanted) in [
            ("time_threshold", live.time_threshold, self.time_threshold),
            (
                "reminder_interval",
                live.reminder_interval,
                self.reminder_interval,
            ),
        ] {
            if live_value != Some(wanted) {
                changes.push(format!("{field}: {} -> {wanted}", shown(live_value)));
            }
        }
        if !live.enabled {
            changes.push("enabled: false -> true".to_owned());
        }
        changes
    }

    fn describe(&self) -> String {
        let mut fields = Vec::new();
        if let Some(value) = self.value_threshold {
            fields.push(format!("value_threshold {value}"));
        }
        fields.push(format!("time_threshold {}", self.time_threshold));
        fields.push(format!("reminder_interval {}", self.reminder_interval));
        fields.join(", ")
    }
}

/// What the rules want on one instance, before looking at CloudAMQP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted {
    /// One per alarm type, in [`ALARM_TYPES`] order.
    pub alarms: Vec<WantedAlarm>,
    /// Rules act on `notice`, which CloudAMQP sends to every recipient already.
    pub notice: bool,
    /// Alarms the rules need that cannot be set up (a shared plan, a missing threshold).
    pub problems: Vec<String>,
}

/// The alarms the rules that select `instance` act on. `is_shared`: its plan has no
/// dedicated-only alarm types.
pub fn wanted(rules: &RuleSet, instance: &InstanceSummary, is_shared: bool) -> Wanted {
    let mut wanted = Wanted::default();
    let scale_down_quiet = rules
        .scale_down()
        .filter(|s| picks(&s.selectors, instance))
        .map(|s| s.quiet_for);
    for kind in ALARM_TYPES {
        let selecting: Vec<&Rule> = rules
            .rules_for(kind)
            .filter(|rule| picks(&rule.selectors, instance))
            .collect();
        if selecting.is_empty() {
            continue;
        }
        let names: Vec<String> = selecting.iter().map(|r| r.name.clone()).collect();
        let listed = names
            .iter()
            .map(|n| format!("{n:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        if *kind == "notice" {
            wanted.notice = true;
            continue;
        }
        if is_shared && DEDICATED_ONLY.contains(kind) {
            wanted.problems.push(format!(
                "{kind}: the plan {} is shared, and shared plans have no {kind} alarm: rule{} {listed} cannot act on this instance",
                instance.plan,
                if names.len() == 1 { "" } else { "s" }
            ));
            continue;
        }
        let value_threshold = if crate::cloudamqp::alarms::THRESHOLD_TYPES.contains(kind) {
            match threshold(kind, &selecting) {
                Ok(value) => Some(value),
                Err(problem) => {
                    wanted.problems.push(problem);
                    continue;
                }
            }
        } else {
            None
        };
        let settings = rules.alarm_settings(kind);
        let time_threshold = settings.time_threshold.unwrap_or(DEFAULT_TIME_THRESHOLD);
        let reminder = settings.reminder_interval.unwrap_or_else(|| {
            let longest = selecting
                .iter()
                .map(|rule| rules.cooldown_of(rule))
                .max()
                .unwrap_or(Duration::ZERO);
            match scale_down_quiet {
                Some(quiet) => longest.min(quiet / 2),
                None => longest,
            }
        });
        wanted.alarms.push(WantedAlarm {
            kind: (*kind).to_owned(),
            value_threshold,
            time_threshold: time_threshold.as_secs(),
            reminder_interval: reminder.as_secs(),
            rules: names,
        });
    }
    wanted
}

/// The `value_threshold` that fires for every rule: the lowest `above` (rounded down), for
/// disk (free space) the highest `below` (rounded up); the type's default when no rule has
/// a threshold.
fn threshold(kind: &str, rules: &[&Rule]) -> Result<u64, String> {
    let below = kind == "disk";
    let mut wrong_way = Vec::new();
    let mut limits = Vec::new();
    for rule in rules {
        match (rule.threshold, below) {
            (Some(Threshold::Above(x)), false) => limits.push(x.floor()),
            (Some(Threshold::Below(x)), true) => limits.push(x.ceil()),
            (Some(_), _) => wrong_way.push(format!("{:?}", rule.name)),
            (None, _) => {}
        }
    }
    if !wrong_way.is_empty() {
        let (has, sends) = if below {
            (
                "above",
                "when the free disk space falls below its threshold",
            )
        } else {
            ("below", "when the value rises above its threshold")
        };
        return Err(format!(
            "{kind}: rule {} uses `{has}`, but CloudAMQP sends the {kind} alarm {sends}: no alarm can serve it",
            wrong_way.join(", ")
        ));
    }
    let chosen = if below {
        limits.into_iter().reduce(f64::max)
    } else {
        limits.into_iter().reduce(f64::min)
    };
    match chosen {
        // Clamped at 0: CloudAMQP takes no negative threshold, and 0 fires for every value.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Some(limit) => Ok(limit.max(0.0) as u64),
        None => default_threshold(kind).ok_or_else(|| {
            format!(
                "{kind}: no rule for it has a threshold, and a {kind} alarm needs a value_threshold: give one of the rules `above`"
            )
        }),
    }
}

/// One step of an instance's plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    CreateRecipient,
    /// Our recipient's value (or type) differs; `changes` for the line.
    UpdateRecipient {
        id: u64,
        changes: Vec<String>,
    },
    RecipientUnchanged {
        id: u64,
    },
    CreateAlarm(WantedAlarm),
    UpdateAlarm {
        id: u64,
        alarm: WantedAlarm,
        changes: Vec<String>,
    },
    AlarmUnchanged {
        id: u64,
        kind: String,
    },
}

impl Step {
    /// Whether it writes to CloudAMQP.
    pub fn writes(&self) -> bool {
        !matches!(
            self,
            Self::RecipientUnchanged { .. } | Self::AlarmUnchanged { .. }
        )
    }

    /// Its plan line, the token never in it: `+ create …`, `~ update …`, `= unchanged …`.
    pub fn line(&self, url_shown: &str) -> String {
        match self {
            Self::CreateRecipient => {
                format!("+ create recipient {RECIPIENT_NAME} ({url_shown})")
            }
            Self::UpdateRecipient { id, changes } => format!(
                "~ update recipient {RECIPIENT_NAME} {id} ({})",
                changes.join(", ")
            ),
            Self::RecipientUnchanged { id } => {
                format!("= unchanged recipient {RECIPIENT_NAME} {id}")
            }
            Self::CreateAlarm(alarm) => {
                format!("+ create alarm {} ({})", alarm.kind, alarm.describe())
            }
            Self::UpdateAlarm { id, alarm, changes } => format!(
                "~ update alarm {} {id} ({})",
                alarm.kind,
                changes.join(", ")
            ),
            Self::AlarmUnchanged { id, kind } => format!("= unchanged alarm {kind} {id}"),
        }
    }
}

/// What `setup` would do on one instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstancePlan {
    /// The recipient step first (when anything is wanted), then one step per alarm type.
    pub steps: Vec<Step>,
    /// Things worth knowing that change nothing (duplicates left alone, the notice alarm).
    pub notes: Vec<String>,
    /// Alarms the rules need that cannot be set up: exit 1.
    pub problems: Vec<String>,
}

/// Plans one instance. `url` is the recipient's whole value, token included (compared,
/// never shown).
pub fn plan(
    rules: &RuleSet,
    instance: &InstanceSummary,
    is_shared: bool,
    recipients: &[Recipient],
    alarms: &[AlarmConfig],
    url: &SecretString,
) -> InstancePlan {
    let wanted = wanted(rules, instance, is_shared);
    let mut plan = InstancePlan {
        problems: wanted.problems.clone(),
        ..InstancePlan::default()
    };
    if wanted.alarms.is_empty() && !wanted.notice {
        return plan;
    }
    let ours: Vec<&Recipient> = recipients.iter().filter(|r| is_ours(r)).collect();
    let our_id = ours.first().map(|r| r.id);
    match ours.first() {
        None => plan.steps.push(Step::CreateRecipient),
        Some(recipient) => {
            let mut changes = Vec::new();
            if recipient.value != url.expose_secret() {
                let (old, new) = (shown_url(&recipient.value), shown_url(url.expose_secret()));
                changes.push(if old == new {
                    format!("value: {old} -> {new}, another token")
                } else {
                    format!("value: {old} -> {new}")
                });
            }
            plan.steps.push(if changes.is_empty() {
                Step::RecipientUnchanged { id: recipient.id }
            } else {
                Step::UpdateRecipient {
                    id: recipient.id,
                    changes,
                }
            });
        }
    }
    for extra in ours.iter().skip(1) {
        plan.notes.push(format!(
            "recipient {} is another webhook named {RECIPIENT_NAME}; {} is used and it is left as it is (delete it in the console if it is a leftover)",
            extra.id,
            ours[0].id
        ));
    }
    for alarm in &wanted.alarms {
        let mine: Vec<&AlarmConfig> = alarms
            .iter()
            .filter(|a| a.kind == alarm.kind && our_id.is_some_and(|id| a.recipients == [id]))
            .collect();
        match mine.first() {
            None => plan.steps.push(Step::CreateAlarm(alarm.clone())),
            Some(live) => {
                let changes = alarm.differences(live);
                plan.steps.push(if changes.is_empty() {
                    Step::AlarmUnchanged {
                        id: live.id,
                        kind: alarm.kind.clone(),
                    }
                } else {
                    Step::UpdateAlarm {
                        id: live.id,
                        alarm: alarm.clone(),
                        changes,
                    }
                });
            }
        }
        for extra in mine.iter().skip(1) {
            plan.notes.push(format!(
                "alarm {} {} is also sent to {RECIPIENT_NAME} only; {} is the one kept up to date, {} is left as it is (delete it in the console if it is a duplicate)",
                alarm.kind, extra.id, mine[0].id, extra.id
            ));
        }
    }
    if wanted.notice {
        let notice = alarms.iter().find(|a| a.kind == "notice");
        plan.notes.push(match notice {
            Some(live) if !live.recipients.is_empty() && !our_id.is_some_and(|id| live.recipients.contains(&id)) => format!(
                "notice: CloudAMQP's mandatory notice alarm ({}) is sent to chosen recipients only, not to {RECIPIENT_NAME}; it is shared with every other recipient, so setup leaves it alone: add {RECIPIENT_NAME} to it in the console",
                live.id
            ),
            _ => "notice: CloudAMQP's mandatory notice alarm already reaches every recipient, so it reaches us too; there is nothing to create".to_owned(),
        });
    }
    plan
}

/// Whether a recipient is the one `setup` makes: a webhook named [`RECIPIENT_NAME`].
pub fn is_ours(recipient: &Recipient) -> bool {
    recipient.kind == "webhook" && recipient.name == RECIPIENT_NAME
}

/// `URL` with `token=<token>` added to its query, the token percent-encoded.
pub fn url_with_token(url: &str, token: &str) -> SecretString {
    /// Everything but RFC 3986's unreserved characters.
    const ENCODE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let separator = if url.contains('?') { '&' } else { '?' };
    let token = percent_encoding::utf8_percent_encode(token, ENCODE);
    SecretString::from(format!("{url}{separator}token={token}"))
}

/// A recipient value fit to print: every `token=` value replaced by `…`.
pub fn shown_url(value: &str) -> String {
    scrub(value)
}

/// Any text fit to print: the value of every `token=` in it replaced by `…` (an error
/// from CloudAMQP may echo a recipient's value).
pub fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("token=") {
        let (head, tail) = rest.split_at(at + "token=".len());
        out.push_str(head);
        let end = tail
            .find(|c: char| matches!(c, '&' | '#' | '"' | '\'' | ')' | ',') || c.is_whitespace())
            .unwrap_or(tail.len());
        if end > 0 {
            out.push('…');
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests;
