//! The evidence of one look: is the cluster healthy, and would its memory fit the smaller
//! plan with `memory_headroom` to spare?

use bytesize::ByteSize;

use super::{DownReason, Figures, LookVerdict, Step};
use crate::cloudamqp::{BrokerNode, Plan};
use crate::rules::ScaleDown;

/// What the smaller plan's nodes would carry, by the contract's formula.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Projection {
    /// The larger of the busiest node's use and the total spread over the smaller plan's
    /// nodes, in bytes.
    pub bytes: u64,
    pub busiest: u64,
    pub total: u64,
    /// The smaller plan's node count the total is spread over.
    pub nodes: u32,
    /// The smaller plan's per-node memory limit.
    pub limit: u64,
    /// `bytes` as a percentage of `limit`.
    pub percent: f64,
}

/// Projects `nodes`' memory onto a plan of `nodes_after` nodes with `limit` bytes each.
pub fn project(nodes: &[BrokerNode], nodes_after: u32, limit: u64) -> Projection {
    let busiest = nodes.iter().map(|n| n.mem_used).max().unwrap_or(0);
    let total = nodes
        .iter()
        .map(|n| n.mem_used)
        .fold(0u64, u64::saturating_add);
    let spread = total / u64::from(nodes_after.max(1));
    let bytes = busiest.max(spread);
    #[allow(clippy::cast_precision_loss)]
    let percent = if limit == 0 {
        f64::INFINITY
    } else {
        bytes as f64 / limit as f64 * 100.0
    };
    Projection {
        bytes,
        busiest,
        total,
        nodes: nodes_after.max(1),
        limit,
        percent,
    }
}

/// Weighs what a look read; `passed` when the instance is ready, every node runs without an
/// alarm, and the projection fits the headroom.
pub(super) fn weigh(section: &ScaleDown, step: &Step, figures: &Figures<'_>) -> LookVerdict {
    if !figures.ready {
        return LookVerdict::failed(
            DownReason::NotReady,
            "CloudAMQP shows the instance as not ready (a change or maintenance may be running)"
                .into(),
        );
    }
    let nodes = match figures.nodes {
        Ok(nodes) => nodes,
        Err(why) => {
            return LookVerdict::failed(
                DownReason::MetricsUnavailable,
                format!("no metrics: {why}; the daemon never steps down without them"),
            );
        }
    };
    if let Some(node) = nodes.iter().find(|n| !n.running) {
        return LookVerdict::failed(
            DownReason::NotReady,
            format!("node {:?} is not running", node.name),
        );
    }
    if let Some(node) = nodes.iter().find(|n| n.mem_alarm || n.disk_free_alarm) {
        let which = match (node.mem_alarm, node.disk_free_alarm) {
            (true, true) => "a memory and a disk alarm",
            (true, false) => "a memory alarm",
            _ => "a disk alarm",
        };
        return LookVerdict::failed(
            DownReason::NodeAlarm,
            format!("node {:?} has {which}", node.name),
        );
    }
    let to = &step.to;
    let Some(limit) = figures
        .seen_limit
        .or_else(|| section.memory_limits.get(to).copied())
    else {
        return LookVerdict::failed(
            DownReason::CapacityUnknown,
            format!(
                "the memory limit of {to} is unknown: the daemon has not seen this instance on it, \
                 and [scale_down] memory_limits has no entry for it"
            ),
        );
    };
    let nodes_after = Plan::node_count(to)
        .or_else(|| u32::try_from(nodes.len()).ok())
        .unwrap_or(1);
    let projection = project(nodes, nodes_after, limit);
    let figures_text = format!(
        "projected memory {} is {:.1} % of {to}'s {} per node (busiest node {}, {} in all over {} node{})",
        ByteSize(projection.bytes).display().iec(),
        projection.percent,
        ByteSize(limit).display().iec(),
        ByteSize(projection.busiest).display().iec(),
        ByteSize(projection.total).display().iec(),
        projection.nodes,
        if projection.nodes == 1 { "" } else { "s" },
    );
    let percent = projection.percent.is_finite().then_some(projection.percent);
    if projection.percent > section.memory_headroom {
        return LookVerdict {
            passed: false,
            reason: DownReason::Headroom,
            detail: format!(
                "{figures_text}; memory_headroom allows {} %",
                section.memory_headroom
            ),
            projected_memory_percent: percent,
        };
    }
    LookVerdict {
        passed: true,
        reason: DownReason::Stabilizing,
        detail: format!(
            "{figures_text}, within memory_headroom {} %",
            section.memory_headroom
        ),
        projected_memory_percent: percent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(used: u64) -> BrokerNode {
        BrokerNode {
            name: "n".into(),
            running: true,
            mem_used: used,
            mem_limit: 0,
            mem_alarm: false,
            disk_free_alarm: false,
        }
    }

    #[test]
    fn the_projection_is_the_busiest_node_or_the_total_spread_over_the_smaller_plan() {
        // Three nodes, one busy: the busiest node wins.
        let p = project(&[node(600), node(100), node(100)], 3, 1000);
        assert_eq!((p.bytes, p.percent), (600, 60.0));
        // Three nodes onto one: the total.
        let p = project(&[node(300), node(300), node(300)], 1, 1000);
        assert_eq!(p.bytes, 900);
        assert_eq!(project(&[node(1)], 1, 0).percent, f64::INFINITY);
    }
}
