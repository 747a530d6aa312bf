//! `explain`: what the daemon would decide for one alarm — the same `decide`, no I/O
//! beyond reading the rules and the alarm.

use std::io::{Read, Write};
use std::path::Path;

use serde_json::json;

use crate::alarm::{self, Alarm};
use crate::cli::{CommandError, ExplainArgs, Format};
use crate::decide::{self, Decision, InstanceView};
use crate::instance::InstanceRef;
use crate::rules::{InstanceNames, RuleSet};

/// Runs `explain`, reading the alarm from `--alarm` or else `stdin`.
pub fn run(
    config: Option<&Path>,
    args: ExplainArgs,
    stdin: &mut dyn Read,
    out: &mut dyn Write,
) -> Result<(), CommandError> {
    let rules = super::load_rules(&super::rules_path(config, args.rules.clone(), false)?.0)?;
    if args.down {
        return super::explain_down::run(&rules, &args, out);
    }
    let body = match &args.alarm {
        Some(path) => std::fs::read(path).map_err(|e| {
            CommandError::Setup(format!("cannot read alarm file {}: {e}", path.display()))
        })?,
        None => {
            let mut body = Vec::new();
            stdin.read_to_end(&mut body).map_err(|e| {
                CommandError::Setup(format!("cannot read the alarm from stdin: {e}"))
            })?;
            body
        }
    };
    let alarm = alarm::parse(&body).map_err(|e| {
        CommandError::Invalid(format!(
            "the alarm is invalid (the daemon would answer 400): {e}"
        ))
    })?;
    let instance = args.instance.or(alarm.instance);
    let (id, uuid) = match instance {
        Some(InstanceRef::Id(id)) => (Some(id.to_string()), None),
        Some(InstanceRef::Uuid(uuid)) => (None, Some(uuid.hyphenated().to_string())),
        None => (None, None),
    };
    let view = InstanceView {
        names: InstanceNames {
            id: id.as_deref(),
            uuid: uuid.as_deref(),
            name: args.instance_name.as_deref(),
        },
        plan: &args.plan,
        last_change_finished: args.last_change,
    };
    let now = args.now.unwrap_or_else(jiff::Timestamp::now);
    let decision = decide::decide(&rules, &alarm, &view, now, None);
    let text = match args.format {
        Format::Json => format!("{}\n", decision_json(&decision)),
        Format::Text => explain_text(&rules, &alarm, &view, &decision),
    };
    out.write_all(text.as_bytes())
        .map_err(|e| CommandError::Setup(format!("cannot write output: {e}")))
}

/// The contract's JSON object for a decision.
pub fn decision_json(decision: &Decision) -> serde_json::Value {
    match decision {
        Decision::Change(change) => json!({
            "decision": "change_plan", "direction": change.direction, "from": change.from,
            "to": change.to, "rule": change.rule,
        }),
        Decision::Skip(skip) => json!({
            "decision": "skip", "reason": skip.reason.code(), "detail": skip.detail,
        }),
    }
}

/// The decision, then how every rule of the alarm's type fared.
fn explain_text(
    rules: &RuleSet,
    alarm: &Alarm,
    view: &InstanceView<'_>,
    decision: &Decision,
) -> String {
    let mut text = match decision {
        Decision::Change(change) => format!(
            "change plan {} -> {} ({}, rule {:?}; then cooldown {})\n",
            change.from,
            change.to,
            change.direction,
            change.rule,
            crate::duration::display(change.cooldown)
        ),
        Decision::Skip(skip) => format!("skip ({}): {}\n", skip.reason, skip.detail),
    };
    let value = alarm
        .value
        .map_or_else(|| "no value".to_owned(), |v| format!("value {v}"));
    text += &format!(
        "alarm: {} ({value}){}\n",
        alarm.kind,
        if alarm.resolved { ", resolved" } else { "" }
    );
    let mut any = false;
    for rule in rules.rules_for(&alarm.kind) {
        if !any {
            text += &format!("rules for {} alarms, in file order:\n", alarm.kind);
            any = true;
        }
        let outcome = decide::evaluate(rules, rule, alarm, view);
        text += &format!(
            "  {}: {}\n",
            rule.name,
            decide::describe(rules, rule, alarm, view, &outcome)
        );
    }
    text
}
