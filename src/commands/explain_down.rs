//! `explain --down`: what one scale-down look decides, with the daemon's own pure code
//! ([`crate::scale_down::decide_down`]), the figures given standing for the whole window.

use std::io::Write;

use serde_json::json;

use super::explain::ExplainArgs;
use super::{CommandError, Format};
use crate::cloudamqp::{BrokerNode, Plan};
use crate::rules::{InstanceNames, RuleSet};
use crate::scale_down::{self, DownDecision, DownView, Figures, Streak};

/// Runs `explain --down`.
pub(super) fn run(
    rules: &RuleSet,
    args: &ExplainArgs,
    out: &mut dyn Write,
) -> Result<(), CommandError> {
    let Some(section) = rules.scale_down() else {
        return Err(CommandError::Invalid(format!(
            "{} has no [scale_down]: the daemon never moves a plan down, so there is nothing to explain",
            rules.source().path
        )));
    };
    let floor = args.floor.as_deref().ok_or_else(|| {
        CommandError::Setup(
            "--down needs --floor PLAN (the plan before the daemon raised it)".into(),
        )
    })?;
    let (id, uuid) = super::explain::id_forms(args.instance);
    let view = DownView {
        names: InstanceNames {
            id: id.as_deref(),
            uuid: uuid.as_deref(),
            name: args.instance_name.as_deref(),
        },
        plan: &args.plan,
        baseline: Some(floor),
        last_alarm: args.last_alarm,
        last_up: args.last_up,
        last_down: args.last_down,
        ups: &[],
    };
    let count = args
        .nodes
        .or_else(|| Plan::node_count(&args.plan))
        .unwrap_or(1);
    let nodes: Vec<BrokerNode> = args
        .memory_used
        .map(|used| {
            (1..=count)
                .map(|n| BrokerNode {
                    name: format!("node-{n}"),
                    running: true,
                    mem_used: used,
                    mem_limit: 0,
                    mem_alarm: false,
                    disk_free_alarm: false,
                })
                .collect()
        })
        .unwrap_or_default();
    let figures = Figures {
        ready: true,
        nodes: match args.memory_used {
            Some(_) => Ok(&nodes),
            None => Err("no --memory-used was given"),
        },
        seen_limit: args.memory_limit,
    };
    let now = args.now.unwrap_or_else(jiff::Timestamp::now);
    let streak = Streak::whole_window(now, section.window);
    let decision = scale_down::decide_down(
        rules,
        &view,
        &crate::guard::GuardFigures::NONE,
        &figures,
        streak,
        now,
    );
    let text = match args.format {
        Format::Json => format!("{}\n", decision_json(&decision)),
        Format::Text => match &decision {
            DownDecision::Change { change, detail, .. } => format!(
                "change plan {} -> {} (down, rule {:?}; then after_down {})\n{detail}\n",
                change.from,
                change.to,
                change.rule,
                crate::duration::display(change.cooldown)
            ),
            DownDecision::Skip(verdict) => {
                format!("skip ({}): {}\n", verdict.reason, verdict.detail)
            }
        },
    };
    out.write_all(text.as_bytes())
        .map_err(|e| CommandError::Setup(format!("cannot write output: {e}")))
}

/// The contract's JSON object for a look's decision.
fn decision_json(decision: &DownDecision) -> serde_json::Value {
    match decision {
        DownDecision::Change { change, .. } => json!({
            "decision": "change_plan", "direction": change.direction, "from": change.from,
            "to": change.to, "rule": change.rule,
        }),
        DownDecision::Skip(verdict) => json!({
            "decision": "skip", "reason": verdict.reason.code(), "detail": verdict.detail,
        }),
    }
}
