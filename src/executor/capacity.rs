//! What each plan can hold, learned on the instance itself: CloudAMQP publishes no RAM
//! figures per plan, so the per-node `mem_limit` the management API reports while the
//! instance is on a plan is that plan's capacity, kept per instance and plan in the store.

use std::time::Duration;

use super::Executor;
use crate::cloudamqp::{BrokerNode, Instance, ManagementAccess};
use crate::store::CapacityRow;

/// The most an upward change waits for the management API before its PUT.
pub const BEFORE_UP: Duration = Duration::from_secs(2);

impl Executor {
    /// Before an upward change of an instance `[scale_down]` selects: one read of its
    /// management API (at most [`BEFORE_UP`]), so the capacity of the plan it leaves is
    /// known when the time comes to step back to it. A failure only leaves it unknown.
    pub(super) async fn learn_capacity_before_up(&self, instance: &Instance) {
        let Some(api) = &self.inner.api else { return };
        let id = instance.id;
        let Some(url) = &instance.url else {
            tracing::warn!(instance = id, plan = %instance.plan, "the instance object has no url: the capacity of its plan stays unknown");
            return;
        };
        let access = match ManagementAccess::new(api.client.management_url(), id, url) {
            Ok(access) => access,
            Err(error) => {
                tracing::warn!(instance = id, %error, "the capacity of the plan it leaves stays unknown");
                return;
            }
        };
        match tokio::time::timeout(BEFORE_UP, api.client.management_nodes(&access)).await {
            Ok(Ok(nodes)) => self.remember_capacity(id, &instance.plan, &nodes),
            Ok(Err(error)) => {
                tracing::warn!(instance = id, plan = %instance.plan, %error, "the capacity of the plan it leaves stays unknown");
            }
            Err(_) => {
                tracing::warn!(instance = id, plan = %instance.plan, "the management API did not answer within 2s: the capacity of the plan it leaves stays unknown");
            }
        }
    }

    /// Keeps the smallest node's `mem_limit` as the capacity of `plan`, when every node runs
    /// and reports one (a partial picture says nothing about the plan).
    pub(super) fn remember_capacity(&self, id: u64, plan: &str, nodes: &[BrokerNode]) {
        if nodes.is_empty() || nodes.iter().any(|n| !n.running || n.mem_limit == 0) {
            return;
        }
        let Some(limit) = nodes.iter().map(|n| n.mem_limit).min() else {
            return;
        };
        let inner = &self.inner;
        let changed = inner.book.update(id, |state| {
            state.capacities.insert(plan.to_owned(), limit) != Some(limit)
        });
        if !changed {
            return;
        }
        tracing::info!(
            instance = id,
            plan,
            mem_limit = limit,
            "learned the memory limit of the plan"
        );
        let write = inner.store.record_capacity(CapacityRow {
            instance_id: id,
            plan: plan.to_owned(),
            mem_limit: limit,
            nodes: u32::try_from(nodes.len()).unwrap_or(u32::MAX),
            seen_at: inner.clock.now(),
        });
        tokio::spawn(async move {
            if let Err(error) = write.await {
                tracing::warn!(instance = id, %error, "could not record the plan's memory limit");
            }
        });
    }
}
