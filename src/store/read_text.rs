//! Each history event in words, for the `history` command's timeline and the dashboard:
//! what happened, and why.

use super::read::{EventKind, HistoryEvent};

impl HistoryEvent {
    /// The instance as an operator reads it: `prod (359559)`, `359559`, or `-`.
    pub fn instance_label(&self) -> String {
        match (&self.instance_name, self.instance) {
            (Some(name), Some(id)) => format!("{name} ({id})"),
            (None, Some(id)) => id.to_string(),
            _ => "-".to_owned(),
        }
    }

    /// What happened, in a few words: `alarm memory 85`, `skip (cooldown)`,
    /// `change up bunny-1 -> hare-1: completed`.
    pub fn what(&self) -> String {
        match &self.what {
            EventKind::Alarm {
                alarm_type,
                value,
                resolved,
                ..
            } => {
                let mut text = format!("alarm {alarm_type}");
                if let Some(value) = value {
                    text.push_str(&format!(" {value}"));
                }
                if *resolved {
                    text.push_str(" resolved");
                }
                text
            }
            EventKind::Decision {
                decision,
                reason,
                from,
                to,
                direction,
                ..
            } => match (decision.as_str(), from, to) {
                ("skip", ..) => format!("skip ({})", reason.as_deref().unwrap_or("no reason")),
                (word, Some(from), Some(to)) => {
                    let direction = direction.map_or("", |d| d.as_str());
                    format!("decided {word} {direction} {from} -> {to}").replace("  ", " ")
                }
                (word, ..) => format!("decided {word}"),
            },
            EventKind::Change {
                change_kind,
                from,
                to,
                direction,
                phase,
                dry_run,
                ..
            } => format!(
                "change {} {}: {phase}{}",
                direction.as_str(),
                match change_kind {
                    crate::decide::ChangeKind::Plan => format!("{from} -> {to}"),
                    kind => crate::decide::describe_move(*kind, from, to),
                },
                if *dry_run { " (dry run)" } else { "" }
            ),
        }
    }

    /// Why: the rule, the reason's sentence, how a change ended; `None` for an alarm.
    pub fn why(&self) -> Option<String> {
        match &self.what {
            EventKind::Alarm { .. } => None,
            // The sentence often names the rule already.
            EventKind::Decision { rule, detail, .. } => Some(match rule {
                Some(rule) if !detail.contains(rule.as_str()) => format!("rule {rule}: {detail}"),
                _ => detail.clone(),
            }),
            EventKind::Change {
                rule,
                finished_at,
                needs_attention,
                detail,
                ..
            } => {
                let mut text = format!("rule {rule}");
                if let Some(at) = finished_at {
                    text.push_str(&format!(", finished {at:.0}"));
                }
                if let Some(detail) = detail {
                    text.push_str(&format!(": {detail}"));
                }
                if *needs_attention {
                    text.push_str(" (needs attention)");
                }
                Some(text)
            }
        }
    }
}
