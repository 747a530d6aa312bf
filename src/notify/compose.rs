//! The events the daemon emits, built from what it decided or what a change did, and the
//! outbox rows they become ([`Notifier::note`]). Pure: the executor records the rows with
//! the write that causes them.

use std::sync::Arc;

use jiff::Timestamp;

use super::event::{Event, EventChange, EventInstance, EventKind, Mode};
use super::sink::Sink;
use crate::decide::Direction;
use crate::store::NewNotification;

/// The sinks in force and the mode: what turns an event into outbox rows.
#[derive(Debug, Clone)]
pub struct Notifier {
    sinks: Arc<[Sink]>,
    mode: Mode,
}

impl Notifier {
    pub fn new(sinks: Arc<[Sink]>, live: bool) -> Self {
        Self {
            sinks,
            mode: Mode::from_live(live),
        }
    }

    /// No sink: nothing is ever recorded.
    pub fn off(live: bool) -> Self {
        Self::new(Arc::from(Vec::new()), live)
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether any sink is configured.
    pub fn any(&self) -> bool {
        !self.sinks.is_empty()
    }

    /// The outbox row for `event`, going to every sink that takes its kind; `None` when
    /// none does (nothing is stored).
    pub fn note(&self, event: &Event) -> Option<NewNotification> {
        let sinks: Vec<String> = self
            .sinks
            .iter()
            .filter(|sink| sink.wants(event.kind))
            .map(|sink| sink.name().to_owned())
            .collect();
        if sinks.is_empty() {
            return None;
        }
        Some(NewNotification {
            event_id: event.id.clone(),
            kind: event.kind.as_str().to_owned(),
            instance_id: event.instance.as_ref().map(|i| i.id),
            reason: event.reason.clone(),
            at: event.time,
            body: serde_json::to_string(event).expect("an event always serializes"),
            sinks,
        })
    }

    /// [`note`](Self::note) for each event, in order.
    pub fn notes(&self, events: impl IntoIterator<Item = Event>) -> Vec<NewNotification> {
        events
            .into_iter()
            .filter_map(|event| self.note(&event))
            .collect()
    }
}

/// The instance an event is about.
#[derive(Debug, Clone, Copy)]
pub struct About<'a> {
    pub id: u64,
    pub name: Option<&'a str>,
}

impl About<'_> {
    /// `prod (4242)`, or `instance 4242` before its name is known.
    fn label(&self) -> String {
        match self.name {
            Some(name) => format!("{name} ({})", self.id),
            None => format!("instance {}", self.id),
        }
    }

    fn json(&self) -> EventInstance {
        EventInstance {
            id: self.id,
            name: self.name.map(str::to_owned),
        }
    }
}

/// A plan change an event is about.
#[derive(Debug, Clone, Copy)]
pub struct ChangeOf<'a> {
    pub kind: crate::decide::ChangeKind,
    pub from: &'a str,
    pub to: &'a str,
    pub rule: &'a str,
    pub direction: Direction,
}

impl ChangeOf<'_> {
    /// `plan` or `extra disk`.
    fn noun(&self) -> &'static str {
        match self.kind {
            crate::decide::ChangeKind::Plan => "plan",
            crate::decide::ChangeKind::Disk => "extra disk",
        }
    }

    /// `bunny-1 → hare-1`, or `0 → 25 GB`.
    fn moved(&self) -> String {
        match self.kind {
            crate::decide::ChangeKind::Plan => format!("{} → {}", self.from, self.to),
            crate::decide::ChangeKind::Disk => format!("{} → {} GB", self.from, self.to),
        }
    }

    fn json(&self, result: &str) -> EventChange {
        EventChange {
            kind: self.kind,
            from: self.from.to_owned(),
            to: self.to.to_owned(),
            direction: self.direction,
            rule: self.rule.to_owned(),
            result: result.to_owned(),
        }
    }
}

fn event(kind: EventKind, mode: Mode, at: Timestamp) -> Event {
    Event {
        id: uuid::Uuid::new_v4().to_string(),
        kind,
        time: at,
        mode,
        instance: None,
        change: None,
        reason: None,
        detail: String::new(),
        summary: String::new(),
    }
}

/// A change was decided and recorded (live: about to be sent; dry run: what would be).
pub fn change_started(
    mode: Mode,
    at: Timestamp,
    about: About<'_>,
    change: ChangeOf<'_>,
    detail: &str,
) -> Event {
    let verb = match mode {
        Mode::Live => format!("changing {}", change.noun()),
        Mode::DryRun => format!("would change {} (dry run)", change.noun()),
    };
    Event {
        instance: Some(about.json()),
        change: Some(change.json("started")),
        detail: detail.to_owned(),
        summary: format!(
            "{}: {verb} {} ({}, rule {})",
            about.label(),
            change.moved(),
            change.direction,
            change.rule
        ),
        ..event(EventKind::ChangeStarted, mode, at)
    }
}

/// A change ended: `result` `completed` (a `change.completed`), or `failed` /
/// `timed_out` (a `change.failed`: it needs a human).
pub fn change_finished(
    mode: Mode,
    at: Timestamp,
    about: About<'_>,
    change: ChangeOf<'_>,
    result: &str,
    detail: Option<&str>,
) -> Event {
    let completed = result == "completed";
    let (kind, summary) = if completed {
        (
            EventKind::ChangeCompleted,
            format!(
                "{}: {} changed {} ({}, rule {})",
                about.label(),
                change.noun(),
                change.moved(),
                change.direction,
                change.rule
            ),
        )
    } else {
        (
            EventKind::ChangeFailed,
            format!(
                "{}: {} change {} {}: needs a human{}",
                about.label(),
                change.noun(),
                change.moved(),
                result.replace('_', " "),
                detail.map(|d| format!(" ({d})")).unwrap_or_default()
            ),
        )
    };
    Event {
        instance: Some(about.json()),
        change: Some(change.json(result)),
        detail: detail
            .unwrap_or(
                if completed && change.kind == crate::decide::ChangeKind::Disk {
                    "CloudAMQP reports every node configured with the new extra disk"
                } else if completed {
                    "CloudAMQP reports the instance on its new plan, every node running"
                } else {
                    "the change did not finish"
                },
            )
            .to_owned(),
        summary,
        ..event(kind, mode, at)
    }
}

/// A guardrail (`reason`) held a change back.
pub fn change_blocked(
    mode: Mode,
    at: Timestamp,
    about: About<'_>,
    change: ChangeOf<'_>,
    reason: &str,
    detail: &str,
) -> Event {
    Event {
        instance: Some(about.json()),
        change: Some(change.json("blocked")),
        reason: Some(reason.to_owned()),
        detail: detail.to_owned(),
        summary: format!(
            "{}: change {} held back ({reason}): {detail}",
            about.label(),
            change.moved()
        ),
        ..event(EventKind::ChangeBlocked, mode, at)
    }
}

/// An alarm that would act came with the instance at the top of its ladder (or its
/// `max_plan`): nothing bigger to go to.
pub fn ladder_top(
    mode: Mode,
    at: Timestamp,
    about: About<'_>,
    alarm: &str,
    reason: &str,
    detail: &str,
) -> Event {
    Event {
        instance: Some(about.json()),
        reason: Some(reason.to_owned()),
        detail: detail.to_owned(),
        summary: format!(
            "{}: {alarm} alarm at the top of its ladder: {detail}",
            about.label()
        ),
        ..event(EventKind::LadderTop, mode, at)
    }
}

/// A reload of the rules file failed; the rules in force stay.
pub fn reload_failed(mode: Mode, at: Timestamp, errors: &[String]) -> Event {
    let first = errors.first().map_or("", String::as_str);
    let more = match errors.len() {
        0 | 1 => String::new(),
        n => format!(" (and {} more)", n - 1),
    };
    Event {
        detail: errors.join("\n"),
        summary: format!("rules reload failed, the rules in force stay: {first}{more}"),
        ..event(EventKind::RulesReloadFailed, mode, at)
    }
}

/// Which repeats are held back, per instance: a `change.blocked` is sent when the instance
/// is first refused for a reason, not again for that reason until a change is made or the
/// reason changes; a `ladder.top` at most once per cooldown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Repeats {
    blocked: Option<String>,
    top_at: Option<Timestamp>,
}

impl Repeats {
    /// What start-up knows: the last `change.blocked` (its reason, when) and `ladder.top`,
    /// and when the instance's last change started.
    pub fn restored(
        blocked: Option<(&str, Timestamp)>,
        top_at: Option<Timestamp>,
        last_change: Option<Timestamp>,
    ) -> Self {
        let blocked = blocked
            .filter(|(_, at)| last_change.is_none_or(|change| change < *at))
            .map(|(reason, _)| reason.to_owned());
        Self { blocked, top_at }
    }

    /// Takes what `other` knows, keeping what this one knew and `other` does not (start-up
    /// restores a `change.blocked` and a `ladder.top` one at a time).
    pub fn restore_from(&mut self, other: Repeats) {
        self.blocked = other.blocked.or(self.blocked.take());
        self.top_at = other.top_at.or(self.top_at);
    }

    /// Whether a refusal for `reason` is news (and remembers it).
    pub fn blocked(&mut self, reason: &str) -> bool {
        if self.blocked.as_deref() == Some(reason) {
            return false;
        }
        self.blocked = Some(reason.to_owned());
        true
    }

    /// Whether an alarm at the top at `now` is news, given `cooldown` (and remembers it).
    pub fn top(&mut self, now: Timestamp, cooldown: std::time::Duration) -> bool {
        if self
            .top_at
            .is_some_and(|at| now < crate::clock::add(at, cooldown))
        {
            return false;
        }
        self.top_at = Some(now);
        true
    }

    /// A change was made: the next refusal is news whatever its reason.
    pub fn changed(&mut self) {
        self.blocked = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    const PROD: About<'static> = About {
        id: 4242,
        name: Some("prod"),
    };
    const UP: ChangeOf<'static> = ChangeOf {
        kind: crate::decide::ChangeKind::Plan,
        from: "bunny-1",
        to: "hare-1",
        rule: "memory-high",
        direction: Direction::Up,
    };

    #[test]
    fn events_have_the_contract_body() {
        let event = change_started(
            Mode::Live,
            at("2026-12-04T17:00:00Z"),
            PROD,
            UP,
            "change plan bunny-1 -> hare-1",
        );
        let body = serde_json::to_value(&event).unwrap();
        assert_eq!(body["type"], "change.started");
        assert_eq!(body["mode"], "live");
        assert_eq!(
            body["instance"],
            serde_json::json!({"id": 4242, "name": "prod"})
        );
        assert_eq!(
            body["change"],
            serde_json::json!({"from": "bunny-1", "to": "hare-1", "direction": "up",
                               "rule": "memory-high", "result": "started"})
        );
        assert!(body["reason"].is_null());
        assert_eq!(
            body["summary"],
            "prod (4242): changing plan bunny-1 → hare-1 (up, rule memory-high)"
        );
        let failed = change_finished(
            Mode::DryRun,
            at("2026-12-04T17:10:00Z"),
            About { id: 7, name: None },
            UP,
            "timed_out",
            Some("not finished within 30m"),
        );
        assert_eq!(failed.kind, EventKind::ChangeFailed);
        assert_eq!(failed.mode, Mode::DryRun);
        assert_eq!(
            failed.summary,
            "instance 7: plan change bunny-1 → hare-1 timed out: needs a human (not finished within 30m)"
        );
        assert_ne!(failed.id, event.id, "every event its own id");
    }

    #[test]
    fn a_refusal_is_news_once_per_reason_until_a_change() {
        let mut repeats = Repeats::default();
        assert!(repeats.blocked("frozen"));
        assert!(!repeats.blocked("frozen"));
        assert!(repeats.blocked("budget"), "another reason is news");
        assert!(repeats.blocked("frozen"), "and so is the first again");
        repeats.changed();
        assert!(repeats.blocked("frozen"));
        // Restored: the last refusal holds unless a change started after it.
        let t = at("2026-12-04T17:00:00Z");
        let mut restored = Repeats::restored(Some(("frozen", t)), None, None);
        assert!(!restored.blocked("frozen"));
        let later = at("2026-12-04T18:00:00Z");
        let mut restored = Repeats::restored(Some(("frozen", t)), None, Some(later));
        assert!(restored.blocked("frozen"));
    }

    #[test]
    fn the_top_of_the_ladder_is_news_once_per_cooldown() {
        let mut repeats = Repeats::default();
        let t = at("2026-12-04T17:00:00Z");
        let cooldown = Duration::from_secs(1800);
        assert!(repeats.top(t, cooldown));
        assert!(!repeats.top(crate::clock::add(t, Duration::from_secs(1799)), cooldown));
        assert!(repeats.top(crate::clock::add(t, cooldown), cooldown));
    }
}
