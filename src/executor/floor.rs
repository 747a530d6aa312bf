//! The floor a step down stops at, kept as CloudAMQP is read.
//!
//! The daemon only takes back what it added. An instance's baseline is the plan it was on
//! when the daemon first saw it (so, before its first upward change); a read that shows a
//! plan the daemon did not put it on (a change in the console, a change of someone else's)
//! makes that plan the new baseline, and the upward changes before it are no longer the
//! daemon's to take back. The baseline is written to the store.

use jiff::Timestamp;

use super::Executor;
use super::state::{Baseline, InstanceState};
use crate::cloudamqp::Instance;
use crate::store::{BaselineRow, InstanceRow};

impl Executor {
    /// What a read of the instance object said: remembered, and its plan held against what
    /// the daemon expected.
    pub(super) fn observe_instance(&self, instance: &Instance) {
        self.remember_instance(
            instance.id,
            &instance.name,
            instance.providerid.as_deref(),
            &instance.plan,
        );
    }

    /// Keeps what CloudAMQP said about an instance, in memory and in the store, and moves
    /// its baseline when the plan is not one the daemon put it on.
    pub(super) fn remember_instance(&self, id: u64, name: &str, uuid: Option<&str>, plan: &str) {
        let inner = &self.inner;
        let now = inner.clock.now();
        let moved = inner.book.update(id, |state: &mut InstanceState| {
            state.name = Some(name.to_owned());
            state.uuid = uuid.map(str::to_owned).or(state.uuid.take());
            let moved = moved_baseline(state, plan, now);
            state.plan = Some(plan.to_owned());
            if let Some((baseline, _)) = &moved {
                state.baseline = Some(baseline.clone());
                state.ups.clear();
                state.streak = crate::scale_down::Streak::default();
            }
            moved
        });
        let row = InstanceRow {
            id,
            name: Some(name.to_owned()),
            providerid: uuid.map(str::to_owned),
            plan: Some(plan.to_owned()),
            updated_at: now,
        };
        let write = inner.store.upsert_instance(row);
        let baseline = moved.map(|(baseline, why)| {
            if why == Why::Moved {
                tracing::info!(instance = id, plan, "the plan was changed outside the daemon: it is the new floor, and nothing before it is taken back");
            }
            inner.store.set_baseline(BaselineRow {
                instance_id: id,
                plan: baseline.plan,
                since: baseline.since,
            })
        });
        tokio::spawn(async move {
            if let Err(error) = write.await {
                tracing::warn!(instance = id, %error, "could not record the instance");
            }
            if let Some(baseline) = baseline
                && let Err(error) = baseline.await
            {
                tracing::warn!(instance = id, %error, "could not record the instance's baseline");
            }
        });
    }
}

/// Why a baseline was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    FirstSeen,
    Moved,
}

/// The baseline after a read showed `plan` at `now`, if it moves: the first plan seen, or a
/// plan the daemon did not put the instance on (not the plan it expected, nor the target of
/// its own last change, which may have landed after the daemon gave up on it). Never while
/// a change of the daemon's is in flight.
fn moved_baseline(state: &InstanceState, plan: &str, now: Timestamp) -> Option<(Baseline, Why)> {
    if state.in_flight.is_some() {
        return None;
    }
    let why = match (&state.baseline, state.plan.as_deref()) {
        (None, _) => Why::FirstSeen,
        (Some(_), Some(expected)) if expected != plan => {
            let ours = state
                .last_plan_change
                .as_ref()
                .is_some_and(|change| !change.dry_run && change.to == plan);
            if ours {
                return None;
            }
            Why::Moved
        }
        _ => return None,
    };
    Some((
        Baseline {
            plan: plan.to_owned(),
            since: now,
        },
        why,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::Direction;
    use crate::executor::state::Finished;

    fn at() -> Timestamp {
        "2026-12-02T10:00:00Z".parse().unwrap()
    }

    fn on(plan: &str, baseline: &str) -> InstanceState {
        InstanceState {
            plan: Some(plan.into()),
            baseline: Some(Baseline {
                plan: baseline.into(),
                since: at(),
            }),
            ..InstanceState::default()
        }
    }

    #[test]
    fn the_first_plan_seen_is_the_baseline() {
        let (baseline, why) = moved_baseline(&InstanceState::default(), "bunny-1", at()).unwrap();
        assert_eq!((baseline.plan.as_str(), why), ("bunny-1", Why::FirstSeen));
    }

    #[test]
    fn a_plan_the_daemon_did_not_make_moves_the_baseline() {
        let state = on("hare-1", "bunny-1");
        assert!(moved_baseline(&state, "hare-1", at()).is_none());
        let (baseline, why) = moved_baseline(&state, "rabbit-1", at()).unwrap();
        assert_eq!((baseline.plan.as_str(), why), ("rabbit-1", Why::Moved));
    }

    #[test]
    fn the_daemon_s_own_late_change_does_not() {
        let mut state = on("bunny-1", "bunny-1");
        let timed_out = Finished {
            from: "bunny-1".into(),
            to: "hare-1".into(),
            rule: "memory-high".into(),
            result: "timed_out",
            finished_at: at(),
            needs_attention: true,
            dry_run: false,
            direction: Direction::Up,
            kind: crate::decide::ChangeKind::Plan,
        };
        state.record_finished(timed_out.clone());
        assert!(moved_baseline(&state, "hare-1", at()).is_none());
        // A disk change finished since says nothing of the plan: still ours.
        state.record_finished(Finished {
            from: "0".into(),
            to: "25".into(),
            rule: "disk-low".into(),
            result: "completed",
            kind: crate::decide::ChangeKind::Disk,
            ..timed_out
        });
        assert!(moved_baseline(&state, "hare-1", at()).is_none());
        // A dry run's target was never the daemon's doing.
        state.last_plan_change.as_mut().unwrap().dry_run = true;
        assert!(moved_baseline(&state, "hare-1", at()).is_some());
    }
}
