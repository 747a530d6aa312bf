//! One notification event: what happened, in the contract's generic webhook body.
//!
//! The same JSON is what the outbox keeps, so an event read back after a restart is sent
//! byte for byte as it would have been before (its `id` stays, and receivers can drop
//! duplicates of an at-least-once delivery by it).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::decide::Direction;

/// An event, serialized exactly as the generic webhook's body.
///
/// `instance`, `change` and `reason` are written as `null` when absent, never left out: the
/// contract promises every key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// A UUID v4, made once when the event is emitted and kept across retries.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// When it happened (RFC 3339).
    pub time: Timestamp,
    pub mode: Mode,
    pub instance: Option<EventInstance>,
    pub change: Option<EventChange>,
    /// The reason code (`cooldown`, `top_of_ladder`, a guardrail's code…), if any.
    pub reason: Option<String>,
    /// One human sentence or more.
    pub detail: String,
    /// One line, for chat and pagers.
    pub summary: String,
}

/// The instance an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventInstance {
    pub id: u64,
    pub name: Option<String>,
}

/// The plan change an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventChange {
    /// `disk` (then `from` and `to` are extra disk sizes in GB); left out for a plan.
    #[serde(default, skip_serializing_if = "crate::decide::ChangeKind::is_plan")]
    pub kind: crate::decide::ChangeKind,
    pub from: String,
    pub to: String,
    pub direction: Direction,
    pub rule: String,
    /// `started`, `completed`, `failed` or `timed_out` (the executor's phase names).
    pub result: String,
}

/// Whether the daemon acts for real.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    #[serde(rename = "live")]
    Live,
    #[serde(rename = "dry-run")]
    DryRun,
}

impl Mode {
    /// `Live` when `live`, else `DryRun`.
    pub fn from_live(live: bool) -> Self {
        if live { Self::Live } else { Self::DryRun }
    }

    /// `live` or `dry-run`, as the body writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::DryRun => "dry-run",
        }
    }
}

/// What happened: the body's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    #[serde(rename = "change.started")]
    ChangeStarted,
    #[serde(rename = "change.completed")]
    ChangeCompleted,
    /// Failed or timed out: needs a human.
    #[serde(rename = "change.failed")]
    ChangeFailed,
    /// A guardrail refused a change.
    #[serde(rename = "change.blocked")]
    ChangeBlocked,
    /// An alarm that would act arrived at the top of its ladder or `max_plan`.
    #[serde(rename = "ladder.top")]
    LadderTop,
    #[serde(rename = "rules.reload_failed")]
    RulesReloadFailed,
    /// Sent by `notify test` only; every sink takes it whatever its `events`.
    #[serde(rename = "test")]
    Test,
}

impl EventKind {
    /// The kinds a sink's `events = [...]` may name (`test` is not one: it always goes).
    pub const ALL: [EventKind; 6] = [
        Self::ChangeStarted,
        Self::ChangeCompleted,
        Self::ChangeFailed,
        Self::ChangeBlocked,
        Self::LadderTop,
        Self::RulesReloadFailed,
    ];

    /// The contract's name: `change.started`, …, `rules.reload_failed`, `test`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChangeStarted => "change.started",
            Self::ChangeCompleted => "change.completed",
            Self::ChangeFailed => "change.failed",
            Self::ChangeBlocked => "change.blocked",
            Self::LadderTop => "ladder.top",
            Self::RulesReloadFailed => "rules.reload_failed",
            Self::Test => "test",
        }
    }

    /// The kind named `name` among [`Self::ALL`] (exactly as written; `test` is none).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// The names of [`Self::ALL`], comma-separated, for error messages.
    pub fn known_names() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Event {
    /// The event `notify test` sends: about no instance and no change.
    pub fn test(now: Timestamp, mode: Mode) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            kind: EventKind::Test,
            time: now,
            mode,
            instance: None,
            change: None,
            reason: None,
            detail: "Sent by `cloudamqp-autoscaler notify test` to check this sink; \
                     nothing has changed."
                .into(),
            summary: format!(
                "cloudamqp-autoscaler test notification ({}): this sink is configured",
                mode.as_str()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn completed() -> Event {
        Event {
            id: "0b7e0c1e-8d2a-4d6e-9a57-3c1f0f7e2a10".into(),
            kind: EventKind::ChangeCompleted,
            time: "2026-11-26T17:00:00Z".parse().unwrap(),
            mode: Mode::Live,
            instance: Some(EventInstance {
                id: 4242,
                name: Some("prod-1".into()),
            }),
            change: Some(EventChange {
                kind: crate::decide::ChangeKind::Plan,
                from: "bunny-1".into(),
                to: "hare-1".into(),
                direction: Direction::Up,
                rule: "memory-high".into(),
                result: "completed".into(),
            }),
            reason: None,
            detail: "bunny-1 -> hare-1 completed".into(),
            summary: "prod-1: bunny-1 -> hare-1 completed".into(),
        }
    }

    #[test]
    fn the_body_is_the_contract_s_and_reads_back() {
        let event = completed();
        let value = serde_json::to_value(&event).unwrap();
        assert_eq!(
            value,
            json!({
                "id": "0b7e0c1e-8d2a-4d6e-9a57-3c1f0f7e2a10",
                "type": "change.completed",
                "time": "2026-11-26T17:00:00Z",
                "mode": "live",
                "instance": {"id": 4242, "name": "prod-1"},
                "change": {"from": "bunny-1", "to": "hare-1", "direction": "up",
                           "rule": "memory-high", "result": "completed"},
                "reason": null,
                "detail": "bunny-1 -> hare-1 completed",
                "summary": "prod-1: bunny-1 -> hare-1 completed",
            })
        );
        let back: Event = serde_json::from_value(value).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn kinds_have_their_contract_names_both_ways() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                json!(kind.as_str()),
                "{kind}"
            );
        }
        assert_eq!(EventKind::parse("test"), None);
        assert_eq!(EventKind::parse("change.Started"), None);
        assert_eq!(
            serde_json::to_value(EventKind::Test).unwrap(),
            json!("test")
        );
        assert_eq!(
            serde_json::to_value(Mode::DryRun).unwrap(),
            json!("dry-run")
        );
    }

    #[test]
    fn the_test_event_is_about_nothing_and_says_so_in_one_line() {
        let now = "2026-11-26T17:00:00Z".parse().unwrap();
        let event = Event::test(now, Mode::DryRun);
        assert_eq!(event.kind, EventKind::Test);
        assert!(event.instance.is_none() && event.change.is_none());
        assert!(!event.summary.contains('\n') && event.summary.contains("dry-run"));
        assert!(uuid::Uuid::parse_str(&event.id).is_ok());
        assert_ne!(Event::test(now, Mode::Live).id, event.id);
    }
}
