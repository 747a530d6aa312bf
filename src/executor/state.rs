//! What the daemon knows about each instance right now: the view `/status` shows and the
//! memory that lets a cooling-down or busy instance be decided without an API call.
//!
//! The store is the durable record; this is rebuilt from it at start-up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use jiff::Timestamp;

use crate::decide::{ChangeKind, Direction};
use crate::scale_down::{DownView, Streak, UpStep};
use crate::store::{ChangeId, ChangeRow, DecisionKind, LookRow, Phase, Recovered};

/// A change sent (or about to be) and not finished.
#[derive(Debug, Clone)]
pub struct InFlight {
    pub id: ChangeId,
    pub from: String,
    pub to: String,
    pub rule: String,
    /// `intended` until CloudAMQP accepts the PUT, then `tracking`.
    pub phase: &'static str,
    pub started_at: Timestamp,
    pub cooldown: Duration,
    pub direction: Direction,
    /// A plan change, or a disk change (`from`/`to` in GB).
    pub kind: ChangeKind,
}

impl From<&ChangeRow> for InFlight {
    /// A change the store holds as open (`intended` or `submitted`).
    fn from(row: &ChangeRow) -> Self {
        Self {
            id: row.id,
            from: row.from_plan.clone(),
            to: row.to_plan.clone(),
            rule: row.rule.clone(),
            phase: if row.phase == Phase::Submitted {
                "tracking"
            } else {
                "intended"
            },
            started_at: row.accepted_at.unwrap_or(row.intended_at),
            cooldown: row.cooldown,
            direction: row.direction,
            kind: row.kind,
        }
    }
}

/// The last change that finished.
#[derive(Debug, Clone)]
pub struct Finished {
    pub from: String,
    pub to: String,
    pub rule: String,
    /// `completed`, `failed` or `timed_out`.
    pub result: &'static str,
    pub finished_at: Timestamp,
    pub needs_attention: bool,
    pub dry_run: bool,
    pub direction: Direction,
    pub kind: ChangeKind,
}

impl From<&ChangeRow> for Finished {
    /// A change the store holds as finished.
    fn from(row: &ChangeRow) -> Self {
        Self {
            from: row.from_plan.clone(),
            to: row.to_plan.clone(),
            rule: row.rule.clone(),
            result: phase_name(row.phase),
            finished_at: row.finished_at.unwrap_or(row.intended_at),
            needs_attention: row.needs_attention,
            dry_run: row.dry_run,
            direction: row.direction,
            kind: row.kind,
        }
    }
}

impl Finished {
    /// The plan the instance was left on, as far as this change tells: the new one only
    /// when it completed for real (a dry run, or a change that did not complete, left it
    /// where it was); `None` for a disk change.
    pub fn plan_left_on(&self) -> Option<&str> {
        if self.kind == ChangeKind::Disk {
            None
        } else if self.result == "completed" && !self.dry_run {
            Some(&self.to)
        } else {
            Some(&self.from)
        }
    }
}

/// The last decision about the instance.
#[derive(Debug, Clone)]
pub struct LastDecision {
    pub at: Timestamp,
    /// `change_plan`, `would_change_plan` or `skip`.
    pub decision: &'static str,
    pub reason: Option<String>,
    pub rule: Option<String>,
    /// The human sentence.
    pub detail: String,
}

/// The last look at an instance above its floor.
#[derive(Debug, Clone, PartialEq)]
pub struct LastLook {
    pub at: Timestamp,
    pub passed: bool,
    /// `None` when the look stepped the plan down.
    pub reason: Option<String>,
    pub detail: String,
    pub projected_memory_percent: Option<f64>,
}

impl From<&LookRow> for LastLook {
    fn from(row: &LookRow) -> Self {
        Self {
            at: row.at,
            passed: row.passed,
            reason: row.reason.clone(),
            detail: row.detail.clone(),
            projected_memory_percent: row.projected_memory_percent,
        }
    }
}

/// An instance's baseline: the plan before the daemon's first upward change, moved by any
/// change the daemon did not make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Baseline {
    pub plan: String,
    pub since: Timestamp,
}

/// Everything known about one instance.
#[derive(Debug, Clone, Default)]
pub struct InstanceState {
    pub name: Option<String>,
    pub uuid: Option<String>,
    /// The plan as last read from CloudAMQP (or reached by our last completed change).
    pub plan: Option<String>,
    pub in_flight: Option<InFlight>,
    /// The last change that finished, either way, of either kind.
    pub last_change: Option<Finished>,
    /// The last plan change that finished (a disk change says nothing of the plan).
    pub last_plan_change: Option<Finished>,
    pub last_decision: Option<LastDecision>,
    /// When the last upward change finished: the up rules' cooldown and `after_up` count
    /// from it.
    pub last_up: Option<Timestamp>,
    /// When the last downward change finished (`after_down`).
    pub last_down: Option<Timestamp>,
    /// The extra disk in GB, as last read from CloudAMQP's nodes (or reached by our last
    /// completed disk change); `None`: not known yet.
    pub disk: Option<u32>,
    /// When the last disk change finished: the disk rules' cooldown counts from it.
    pub last_disk: Option<Timestamp>,
    pub baseline: Option<Baseline>,
    /// Upward changes completed since the baseline was set, oldest first.
    pub ups: Vec<UpStep>,
    /// When the daemon last received an alarm for it (not a resolve).
    pub last_alarm: Option<Timestamp>,
    /// The per-node memory limit seen on each plan.
    pub capacities: HashMap<String, u64>,
    /// The passing looks so far.
    pub streak: Streak,
    pub last_look: Option<LastLook>,
    /// When its recent changes (up and down, dry runs too) were started, oldest first:
    /// what `[limits] max_changes` counts.
    pub change_starts: Vec<Timestamp>,
    /// The opening of each schedule's window that last made a change (or tried to) here:
    /// at most one per opening, across restarts.
    pub schedule_runs: HashMap<String, Timestamp>,
    /// The notifications held back when repeated.
    pub repeats: crate::notify::Repeats,
}

/// Upward changes remembered per instance: a step down only ever needs the last few.
const MAX_UPS: usize = 32;

impl InstanceState {
    /// What rules' selectors see of the instance whose id reads `id`.
    pub fn names<'a>(&'a self, id: &'a str) -> crate::rules::InstanceNames<'a> {
        crate::rules::InstanceNames {
            id: Some(id),
            uuid: self.uuid.as_deref(),
            name: self.name.as_deref(),
        }
    }

    /// What a look (or `/status`) sees of the instance, if its plan is known.
    pub fn down_view<'a>(&'a self, id: &'a str) -> Option<DownView<'a>> {
        Some(DownView {
            names: self.names(id),
            plan: self.plan.as_deref()?,
            baseline: self.baseline.as_ref().map(|b| b.plan.as_str()),
            last_alarm: self.last_alarm,
            last_up: self.last_up,
            last_down: self.last_down,
            ups: &self.ups,
        })
    }

    /// A change was started (its intent recorded) at `at`.
    /// When the daemon last had to do with the instance: an alarm, a decision, a change,
    /// a look (`None`: never, as far as the state knows).
    pub fn last_seen(&self) -> Option<Timestamp> {
        [
            self.last_alarm,
            self.last_decision.as_ref().map(|d| d.at),
            self.last_change.as_ref().map(|c| c.finished_at),
            self.last_look.as_ref().map(|l| l.at),
            self.change_starts.last().copied(),
        ]
        .into_iter()
        .flatten()
        .max()
    }

    pub fn note_started(&mut self, at: Timestamp) {
        self.change_starts.push(at);
        let keep = crate::rules::MAX_CHANGES_COUNT as usize;
        if self.change_starts.len() > keep {
            let extra = self.change_starts.len() - keep;
            self.change_starts.drain(..extra);
        }
    }

    /// An alarm for the instance was received at `at`: the quiet period starts again.
    pub fn note_alarm(&mut self, alarm: &crate::alarm::Alarm, at: Timestamp) {
        if !alarm.resolved && self.last_alarm.is_none_or(|last| last < at) {
            self.last_alarm = Some(at);
        }
    }

    /// A change finished: it counts for its direction's gates; a completed upward change
    /// made for real is one a step down may take back.
    pub fn record_finished(&mut self, finished: Finished) {
        if finished.kind == ChangeKind::Plan {
            self.last_plan_change = Some(finished.clone());
        }
        if finished.kind == ChangeKind::Disk {
            self.last_disk = Some(finished.finished_at);
            if finished.result == "completed" && !finished.dry_run {
                self.disk = finished.to.parse().ok();
            }
            self.last_change = Some(finished);
            return;
        }
        match finished.direction {
            Direction::Up => {
                self.last_up = Some(finished.finished_at);
                if finished.result == "completed" && !finished.dry_run {
                    self.ups.push(UpStep {
                        from: finished.from.clone(),
                        to: finished.to.clone(),
                        rule: finished.rule.clone(),
                    });
                    if self.ups.len() > MAX_UPS {
                        self.ups.remove(0);
                    }
                }
            }
            Direction::Down => self.last_down = Some(finished.finished_at),
        }
        self.last_change = Some(finished);
    }

    /// Shows `decision` in `/status` unless a newer one is already there: decisions are
    /// announced after their writes, and one on arrival may come after a newer one from the
    /// queue, or the other way round.
    pub fn show_decision(&mut self, decision: LastDecision) {
        if self
            .last_decision
            .as_ref()
            .is_none_or(|last| last.at <= decision.at)
        {
            self.last_decision = Some(decision);
        }
    }
}

/// Per-instance state and the gates that make decisions single-flight per instance.
#[derive(Debug, Default)]
pub struct StateBook {
    instances: Mutex<HashMap<u64, InstanceState>>,
    gates: Mutex<HashMap<u64, Arc<tokio::sync::Mutex<()>>>>,
    /// The shared state's version the book was last loaded at (replicas on PostgreSQL).
    world: Mutex<Option<i64>>,
}

impl StateBook {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, InstanceState>> {
        self.instances
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The shared state's version the book rests on (`None` on SQLite). Read it before
    /// the state a decision uses: a reload between the two then makes the decision's
    /// change stale, never the other way round.
    pub fn world(&self) -> Option<i64> {
        *self.world.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces what the book knows from the store with `recovered` (a newer snapshot of
    /// the shared state), keeping what only this replica's memory holds: the passing
    /// looks, the notifications held back, the extra disk read from CloudAMQP.
    pub fn resync(&self, recovered: &Recovered) {
        let fresh = StateBook::default();
        fresh.restore(recovered);
        let mut fresh = fresh
            .instances
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        let mut book = self.lock();
        for (id, old) in book.drain() {
            match fresh.get_mut(&id) {
                Some(state) => {
                    state.streak = old.streak;
                    state.repeats = old.repeats;
                    state.disk = state.disk.or(old.disk);
                    if let Some(decision) = old.last_decision {
                        state.show_decision(decision);
                    }
                }
                None => {
                    fresh.insert(id, old);
                }
            }
        }
        *book = fresh;
        *self.world.lock().unwrap_or_else(PoisonError::into_inner) = recovered.world;
    }

    /// The gate of one instance: whoever holds it is the only one deciding for it.
    pub fn gate(&self, id: u64) -> Arc<tokio::sync::Mutex<()>> {
        let mut gates = self.gates.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(gates.entry(id).or_default())
    }

    /// A copy of one instance's state (default when unknown).
    pub fn get(&self, id: u64) -> InstanceState {
        self.lock().get(&id).cloned().unwrap_or_default()
    }

    /// Looks at one instance's state (default when unknown) without copying it; `look` runs
    /// with the book locked, so it must not wait for anything.
    pub fn read<R>(&self, id: u64, look: impl FnOnce(&InstanceState) -> R) -> R {
        match self.lock().get(&id) {
            Some(state) => look(state),
            None => look(&InstanceState::default()),
        }
    }

    /// Changes one instance's state if the book knows it; `None` (and no entry made) if not.
    pub fn update_if_known<R>(
        &self,
        id: u64,
        change: impl FnOnce(&mut InstanceState) -> R,
    ) -> Option<R> {
        self.lock().get_mut(&id).map(change)
    }

    /// Changes one instance's state.
    pub fn update<R>(&self, id: u64, change: impl FnOnce(&mut InstanceState) -> R) -> R {
        change(self.lock().entry(id).or_default())
    }

    /// The ids of the instances for which `keep` holds, looked at with the book locked
    /// (nothing copied; `keep` must not wait for anything).
    pub fn ids_where(&self, mut keep: impl FnMut(u64, &InstanceState) -> bool) -> Vec<u64> {
        self.lock()
            .iter()
            .filter(|(id, state)| keep(**id, state))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Every instance, sorted by id.
    pub fn all(&self) -> Vec<(u64, InstanceState)> {
        let mut all: Vec<_> = self.lock().iter().map(|(id, s)| (*id, s.clone())).collect();
        all.sort_by_key(|(id, _)| *id);
        all
    }

    /// How many changes are in flight.
    pub fn in_flight_count(&self) -> usize {
        self.lock()
            .values()
            .filter(|s| s.in_flight.is_some())
            .count()
    }

    /// Rebuilds the book from what the store kept.
    pub fn restore(&self, recovered: &Recovered) {
        *self.world.lock().unwrap_or_else(PoisonError::into_inner) = recovered.world;
        let mut book = self.lock();
        let instances = &recovered.instances;
        for row in instances {
            let state = book.entry(row.id).or_default();
            state.name = row.name.clone();
            state.uuid = row.providerid.clone();
            state.plan = row.plan.clone();
        }
        for row in &recovered.last_finished_plans {
            // A change that completed after the instance was last read says its plan (a
            // store from before the plan was written at completion, or a lost write).
            let read_at = instances
                .iter()
                .find(|instance| instance.id == row.instance_id)
                .map(|instance| instance.updated_at);
            let state = book.entry(row.instance_id).or_default();
            if row.phase == Phase::Completed
                && !row.dry_run
                && row
                    .finished_at
                    .is_some_and(|finished| read_at.is_none_or(|read| read < finished))
            {
                state.plan = Some(row.to_plan.clone());
            }
            state.last_plan_change = Some(Finished::from(row));
        }
        for row in &recovered.last_finished {
            book.entry(row.instance_id).or_default().last_change = Some(Finished::from(row));
        }
        for (id, finished_at, size) in &recovered.last_disk {
            let state = book.entry(*id).or_default();
            state.last_disk = Some(*finished_at);
            state.disk = *size;
        }
        for (id, direction, finished_at) in &recovered.last_by_direction {
            let state = book.entry(*id).or_default();
            match direction {
                Direction::Up => state.last_up = Some(*finished_at),
                Direction::Down => state.last_down = Some(*finished_at),
            }
        }
        for row in &recovered.baselines {
            book.entry(row.instance_id).or_default().baseline = Some(Baseline {
                plan: row.plan.clone(),
                since: row.since,
            });
        }
        for row in &recovered.ups {
            let ups = &mut book.entry(row.instance_id).or_default().ups;
            ups.push(UpStep {
                from: row.from_plan.clone(),
                to: row.to_plan.clone(),
                rule: row.rule.clone(),
            });
            if ups.len() > MAX_UPS {
                ups.remove(0);
            }
        }
        for (id, at) in &recovered.last_alarms {
            book.entry(*id).or_default().last_alarm = Some(*at);
        }
        for row in &recovered.capacities {
            book.entry(row.instance_id)
                .or_default()
                .capacities
                .insert(row.plan.clone(), row.mem_limit);
        }
        for row in &recovered.last_looks {
            book.entry(row.instance_id).or_default().last_look = Some(LastLook::from(row));
        }
        for row in &recovered.open_changes {
            book.entry(row.instance_id).or_default().in_flight = Some(InFlight::from(row));
        }
        for (id, at) in &recovered.change_starts {
            book.entry(*id).or_default().note_started(*at);
        }
        for run in &recovered.schedule_runs {
            book.entry(run.instance_id)
                .or_default()
                .schedule_runs
                .insert(run.schedule.clone(), run.opened_at);
        }
        for notice in &recovered.notices {
            let state = book.entry(notice.instance_id).or_default();
            let last_change = state.change_starts.last().copied();
            let (mut blocked, mut top) = (None, None);
            match notice.kind.as_str() {
                "change.blocked" => {
                    blocked = notice.reason.as_deref().map(|reason| (reason, notice.at));
                }
                _ => top = Some(notice.at),
            }
            let restored = crate::notify::Repeats::restored(blocked, top, last_change);
            state.repeats.restore_from(restored);
        }
        for row in &recovered.last_decisions {
            book.entry(row.instance_id).or_default().last_decision = Some(LastDecision {
                at: row.at,
                decision: match (decision_name(row.kind), &row.from_plan) {
                    // A disk change's decision moves between sizes (no plan is a number).
                    ("change_plan", Some(from)) if from.parse::<u32>().is_ok() => "change_disk",
                    ("would_change_plan", Some(from)) if from.parse::<u32>().is_ok() => {
                        "would_change_disk"
                    }
                    (name, _) => name,
                },
                reason: row.reason.clone(),
                rule: row.rule.clone(),
                detail: row.detail.clone(),
            });
        }
    }
}

/// The contract's name of a finished phase.
pub fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Intended => "intended",
        Phase::Submitted => "tracking",
        Phase::Completed => "completed",
        Phase::Failed => "failed",
        Phase::TimedOut => "timed_out",
    }
}

/// The `/status` name of a decision kind.
pub fn decision_name(kind: DecisionKind) -> &'static str {
    match kind {
        DecisionKind::Change => "change_plan",
        DecisionKind::WouldChange => "would_change_plan",
        DecisionKind::Skip => "skip",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::InstanceRow;

    fn shown(at: &str, decision: &'static str) -> LastDecision {
        LastDecision {
            at: at.parse().unwrap(),
            decision,
            reason: None,
            rule: None,
            detail: String::new(),
        }
    }

    /// `/status` shows the newest decision, whichever path announces last.
    #[test]
    fn an_older_decision_never_replaces_a_newer_one() {
        let mut state = InstanceState::default();
        state.show_decision(shown("2026-11-26T17:00:02Z", "skip"));
        state.show_decision(shown("2026-11-26T17:00:01Z", "change_plan"));
        assert_eq!(state.last_decision.as_ref().unwrap().decision, "skip");
        state.show_decision(shown("2026-11-26T17:00:03Z", "change_plan"));
        assert_eq!(
            state.last_decision.as_ref().unwrap().decision,
            "change_plan"
        );
    }

    fn read(plan: &str, at: &str) -> InstanceRow {
        InstanceRow {
            id: 7,
            name: Some("prod".into()),
            providerid: None,
            plan: Some(plan.into()),
            updated_at: at.parse().unwrap(),
        }
    }

    fn completed(finished_at: &str, dry_run: bool) -> ChangeRow {
        ChangeRow {
            dry_run,
            phase: Phase::Completed,
            accepted_at: Some("2026-11-26T16:59:01Z".parse().unwrap()),
            finished_at: Some(finished_at.parse().unwrap()),
            ..ChangeRow::example("2026-11-26T16:59:00Z")
        }
    }

    fn restored_plan(instance: Option<&InstanceRow>, finished: &ChangeRow) -> Option<String> {
        let book = StateBook::default();
        book.restore(&Recovered {
            instances: instance.into_iter().cloned().collect(),
            last_finished_plans: vec![finished.clone()],
            ..Recovered::default()
        });
        book.get(7).plan
    }

    /// A store whose instance row predates the change's completion (written by a build
    /// that kept the plan only in memory) still restores the plan the change reached; a
    /// later read of the instance, or a dry run, does not give way to it.
    #[test]
    fn a_completed_change_newer_than_the_last_read_gives_the_plan() {
        let before = read("bunny-1", "2026-11-26T16:58:00Z");
        let after = read("rabbit-1", "2026-11-26T17:30:00Z");
        let done = completed("2026-11-26T17:05:00Z", false);
        let dry = completed("2026-11-26T17:05:00Z", true);
        assert_eq!(
            restored_plan(Some(&before), &done).as_deref(),
            Some("hare-1")
        );
        assert_eq!(restored_plan(None, &done).as_deref(), Some("hare-1"));
        assert_eq!(
            restored_plan(Some(&after), &done).as_deref(),
            Some("rabbit-1")
        );
        assert_eq!(
            restored_plan(Some(&before), &dry).as_deref(),
            Some("bunny-1")
        );
    }
}
