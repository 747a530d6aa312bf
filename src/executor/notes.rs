//! Which notifications a decision or a change causes, with the repeats held back (see
//! [`crate::notify::Repeats`]). The rows go into the store with the write that causes them.
//! With no sink configured nothing is built.

use jiff::Timestamp;

use super::Executor;
use super::decision::Outcome;
use super::state::{InFlight, InstanceState};
use crate::decide::{PlanChange, Reason};
use crate::notify::{About, ChangeOf, compose};
use crate::rules::RuleSet;
use crate::store::NewNotification;

fn about<'a>(id: u64, state: &'a InstanceState) -> About<'a> {
    About {
        id,
        name: state.name.as_deref(),
    }
}

/// A decided change, as its events name it.
pub(super) fn change_of(change: &PlanChange) -> ChangeOf<'_> {
    ChangeOf {
        kind: change.kind,
        from: &change.from,
        to: &change.to,
        rule: &change.rule,
        direction: change.direction,
    }
}

/// Whether `reason` is a guardrail's (its refusal is a `change.blocked`).
pub(super) fn is_guardrail(reason: Reason) -> bool {
    matches!(
        reason,
        Reason::Paused | Reason::Frozen | Reason::MaxChanges | Reason::Budget
    )
}

impl Executor {
    /// The notes of a decision not to act on an alarm of `alarm_kind`: a guardrail's first
    /// refusal for its reason (`change.blocked`), or the top of the ladder once per
    /// cooldown (`ladder.top`). Updates `state`'s repeats.
    pub(super) fn skip_notes(
        &self,
        rules: &RuleSet,
        alarm_kind: &str,
        outcome: &Outcome,
        state: &mut InstanceState,
        now: Timestamp,
    ) -> Vec<NewNotification> {
        let notifier = &self.inner.config.notifier;
        let (Some(id), true) = (outcome.instance_id, notifier.any()) else {
            return Vec::new();
        };
        let skip = &outcome.skip;
        let event = match (skip.reason, &outcome.held) {
            (reason, Some(change)) if is_guardrail(reason) => {
                if !state.repeats.blocked(reason.code()) {
                    return Vec::new();
                }
                compose::change_blocked(
                    notifier.mode(),
                    now,
                    about(id, state),
                    change_of(change),
                    reason.code(),
                    &skip.detail,
                )
            }
            (Reason::TopOfLadder, _) => {
                let cooldown = skip
                    .rule
                    .as_deref()
                    .and_then(|name| rules.rules().iter().find(|rule| rule.name == name))
                    .map_or_else(|| rules.default_cooldown(), |rule| rules.cooldown_of(rule));
                if !state.repeats.top(now, cooldown) {
                    return Vec::new();
                }
                compose::ladder_top(
                    notifier.mode(),
                    now,
                    about(id, state),
                    alarm_kind,
                    skip.reason.code(),
                    &skip.detail,
                )
            }
            _ => return Vec::new(),
        };
        notifier.notes([event])
    }

    /// [`skip_notes`](Self::skip_notes) for a decision taken off the book's lock.
    pub(super) fn skip_notes_now(
        &self,
        alarm_kind: &str,
        outcome: &Outcome,
        now: Timestamp,
    ) -> Vec<NewNotification> {
        match outcome.instance_id {
            Some(id) if self.inner.config.notifier.any() => {
                let loaded = self.inner.rules.snapshot();
                self.inner.book.update(id, |state| {
                    self.skip_notes(&loaded.rules, alarm_kind, outcome, state, now)
                })
            }
            _ => Vec::new(),
        }
    }

    /// A guardrail (`reason`, `detail`) held back `change` of instance `id`, outside an
    /// alarm's decision (a step down, a schedule).
    pub(super) fn blocked_notes(
        &self,
        id: u64,
        change: &PlanChange,
        reason: Reason,
        detail: &str,
        now: Timestamp,
    ) -> Vec<NewNotification> {
        let notifier = &self.inner.config.notifier;
        if !notifier.any() || !is_guardrail(reason) {
            return Vec::new();
        }
        self.inner.book.update(id, |state| {
            if !state.repeats.blocked(reason.code()) {
                return Vec::new();
            }
            notifier.notes([compose::change_blocked(
                notifier.mode(),
                now,
                about(id, state),
                change_of(change),
                reason.code(),
                detail,
            )])
        })
    }

    /// The `change.started` of `change` on instance `id` (its refusals are news again).
    pub(super) fn started_notes(
        &self,
        id: u64,
        change: &PlanChange,
        detail: &str,
        now: Timestamp,
    ) -> Vec<NewNotification> {
        let notifier = &self.inner.config.notifier;
        if !notifier.any() {
            return Vec::new();
        }
        self.inner.book.update(id, |state| {
            state.repeats.changed();
            notifier.notes([compose::change_started(
                notifier.mode(),
                now,
                about(id, state),
                change_of(change),
                detail,
            )])
        })
    }

    /// The `change.completed` or `change.failed` of `change` (`result` its phase's name).
    pub(super) fn finished_notes(
        &self,
        id: u64,
        change: ChangeOf<'_>,
        result: &str,
        detail: Option<&str>,
        now: Timestamp,
    ) -> Vec<NewNotification> {
        let notifier = &self.inner.config.notifier;
        if !notifier.any() {
            return Vec::new();
        }
        let state = self.inner.book.get(id);
        notifier.notes([compose::change_finished(
            notifier.mode(),
            now,
            about(id, &state),
            change,
            result,
            detail,
        )])
    }
}

/// A change in flight, as its events name it.
pub(super) fn in_flight_of(change: &InFlight) -> ChangeOf<'_> {
    ChangeOf {
        kind: change.kind,
        from: &change.from,
        to: &change.to,
        rule: &change.rule,
        direction: change.direction,
    }
}
