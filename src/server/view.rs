//! What the daemon knows of each instance right now, as `/status` and the dashboard show
//! it: built in one place from the executor's book and the rules in force, serialized for
//! `/status`, rendered for `/` and `/instances/{id}`.

use jiff::Timestamp;
use serde::Serialize;

use super::AppState;
use crate::decide::{ChangeKind, Direction};
use crate::executor::state::InstanceState;
use crate::guard::Pause;
use crate::rules::RuleSet;

/// One instance, with `/status`'s fields (those marked `skip` are the dashboard's).
#[derive(Debug, Clone, Serialize)]
pub struct InstanceView {
    #[serde(skip)]
    pub id: u64,
    pub name: Option<String>,
    pub plan: Option<String>,
    /// The extra disk in GB, as last read or reached (`None`: not known).
    pub disk: Option<u32>,
    pub floor: Option<String>,
    pub change: Option<ChangeView>,
    pub cooldown_until: Option<Timestamp>,
    pub last_change: Option<LastChangeView>,
    pub last_decision: Option<DecisionView>,
    /// Where the next step down goes; `None` at the floor or when `[scale_down]` does not
    /// select the instance.
    pub scale_down: Option<ScaleDownView>,
    /// The ladder that holds its plan (the first in file order) and the plan's rung.
    #[serde(skip)]
    pub ladder: Option<LadderPosition>,
    /// The pauses in force that hold it, either direction.
    #[serde(skip)]
    pub pauses: Vec<Pause>,
}

impl InstanceView {
    /// A failed or timed-out last change: a human should look.
    pub fn needs_attention(&self) -> bool {
        self.last_change.as_ref().is_some_and(|c| c.needs_attention)
    }

    /// Whether it is cooling down at `now`.
    pub fn cooling_down(&self, now: Timestamp) -> bool {
        self.cooldown_until.is_some_and(|until| until > now)
    }
}

/// What a change moves between: plans, or extra disk sizes (GB, written as numbers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Moved {
    Plan(String),
    Gb(u32),
}

impl Moved {
    /// `from` or `to` of a change of `kind`, as the book keeps it.
    pub fn of(kind: ChangeKind, text: &str) -> Self {
        match (kind, text.parse()) {
            (ChangeKind::Disk, Ok(gb)) => Self::Gb(gb),
            _ => Self::Plan(text.to_owned()),
        }
    }
}

impl std::fmt::Display for Moved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Plan(plan) => f.write_str(plan),
            Self::Gb(gb) => write!(f, "{gb} GB"),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ChangeView {
    pub kind: ChangeKind,
    pub from: Moved,
    pub to: Moved,
    pub rule: String,
    pub direction: Direction,
    pub phase: &'static str,
    pub started_at: Timestamp,
}

#[derive(Debug, Clone, Serialize)]
pub struct LastChangeView {
    pub kind: ChangeKind,
    pub from: Moved,
    pub to: Moved,
    pub rule: String,
    pub direction: Direction,
    pub result: &'static str,
    pub finished_at: Timestamp,
    pub needs_attention: bool,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct DecisionView {
    pub at: Timestamp,
    pub decision: &'static str,
    pub reason: Option<String>,
    pub rule: Option<String>,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScaleDownView {
    pub to: String,
    pub eligible_at: Option<Timestamp>,
    pub last_look: Option<LookView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LookView {
    pub at: Timestamp,
    pub passed: bool,
    pub reason: Option<String>,
    pub detail: String,
    pub projected_memory_percent: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LadderPosition {
    pub name: String,
    pub plans: Vec<String>,
    /// The plan's position, 0 = smallest.
    pub rung: usize,
}

/// Every instance the daemon knows, by id, with the rules in force now.
pub fn instances(state: &AppState) -> Vec<InstanceView> {
    let loaded = state.rules.snapshot();
    let now = state.clock.now();
    let pauses = state.executor.pauses().in_force(now);
    state
        .executor
        .book()
        .all()
        .into_iter()
        // Bounded however long it runs: an instance not seen within retention is gone.
        .filter(|(_, instance)| {
            let cutoff = crate::clock::sub(now, state.retention);
            instance.in_flight.is_some() || instance.last_seen().is_none_or(|at| at >= cutoff)
        })
        .map(|(id, instance)| build(&loaded.rules, id, &instance, &pauses, now))
        .collect()
}

/// One instance, `None` when the daemon does not know it.
pub fn instance(state: &AppState, id: u64) -> Option<InstanceView> {
    instances(state).into_iter().find(|view| view.id == id)
}

fn build(
    rules: &RuleSet,
    id: u64,
    instance: &InstanceState,
    pauses: &[Pause],
    now: Timestamp,
) -> InstanceView {
    let id_text = id.to_string();
    let names = instance.names(&id_text);
    let change = instance.in_flight.as_ref().map(|c| ChangeView {
        kind: c.kind,
        from: Moved::of(c.kind, &c.from),
        to: Moved::of(c.kind, &c.to),
        rule: c.rule.clone(),
        direction: c.direction,
        phase: c.phase,
        started_at: c.started_at,
    });
    // With the rules in force now (a reload shows at once) and the cooldowns of the rules
    // that could act on the plan, as decisions weigh them, counted from the last upward
    // change only (a step down never delays a step up).
    let plan_until = instance.last_up.and_then(|finished| {
        let plan = instance.plan.as_deref().or_else(|| {
            instance
                .last_plan_change
                .as_ref()
                .and_then(|c| c.plan_left_on())
        })?;
        crate::decide::cooling_down_until(rules, plan, &names, finished, now)
    });
    // A disk rule's cooldown holds disk alarms back as long: the later of the two.
    let disk_until = instance
        .last_disk
        .and_then(|finished| crate::decide::disk_cooling_down_until(rules, &names, finished, now));
    let cooldown_until = plan_until.max(disk_until);
    let last_change = instance.last_change.as_ref().map(|c| LastChangeView {
        kind: c.kind,
        from: Moved::of(c.kind, &c.from),
        to: Moved::of(c.kind, &c.to),
        rule: c.rule.clone(),
        direction: c.direction,
        result: c.result,
        finished_at: c.finished_at,
        needs_attention: c.needs_attention,
        dry_run: c.dry_run,
    });
    let last_decision = instance.last_decision.as_ref().map(|d| DecisionView {
        at: d.at,
        decision: d.decision,
        reason: d.reason.clone(),
        rule: d.rule.clone(),
        detail: d.detail.clone(),
    });
    let floor = instance.baseline.as_ref().map(|baseline| {
        crate::scale_down::floor(
            rules,
            rules.scale_down().and_then(|s| s.min_plan.as_deref()),
            &baseline.plan,
            &names,
            now,
        )
        .plan
        .to_owned()
    });
    let ladder = instance.plan.as_deref().and_then(|plan| {
        rules.ladders().iter().find_map(|ladder| {
            Some(LadderPosition {
                name: ladder.name.clone(),
                plans: ladder.plans.clone(),
                rung: ladder.rung(plan)?,
            })
        })
    });
    let holding = pauses
        .iter()
        .filter(|p| crate::rules::any_picks(&p.selectors, &names))
        .cloned()
        .collect();
    InstanceView {
        id,
        name: instance.name.clone(),
        plan: instance.plan.clone(),
        disk: instance.disk,
        floor,
        change,
        cooldown_until,
        last_change,
        last_decision,
        scale_down: scale_down(rules, &id_text, instance, now),
        ladder,
        pauses: holding,
    }
}

/// Where the next step goes, when the time gates allow it, the last look; `None` at the
/// floor or when `[scale_down]` does not select the instance.
fn scale_down(
    rules: &RuleSet,
    id: &str,
    instance: &InstanceState,
    now: Timestamp,
) -> Option<ScaleDownView> {
    let view = instance.down_view(id)?;
    let (section, step) = crate::scale_down::target(rules, &view, now).ok()?;
    let last_look = instance.last_look.as_ref().map(|look| LookView {
        at: look.at,
        passed: look.passed,
        reason: look.reason.clone(),
        detail: look.detail.clone(),
        projected_memory_percent: look.projected_memory_percent,
    });
    Some(ScaleDownView {
        to: step.to.clone(),
        eligible_at: crate::scale_down::eligible_at(section, &view, now),
        last_look,
    })
}
