//! `explain`: what the daemon would decide for one alarm — the same `decide`, no I/O
//! beyond reading the rules and the alarm.

use std::io::{Read, Write};
use std::path::Path;

use serde_json::json;

use super::{CommandError, Format};
use crate::alarm::{self, Alarm};
use crate::decide::{self, Decision, InstanceView};
use crate::instance::InstanceRef;
use crate::rules::{InstanceNames, RuleSet};

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// The plan the instance is on now, e.g. bunny-1.
    #[arg(long, value_name = "PLAN")]
    pub plan: String,
    /// The rules file (default: the `rules.path` setting, "rules.toml").
    #[arg(long, value_name = "FILE")]
    pub rules: Option<std::path::PathBuf>,
    /// The alarm JSON as CloudAMQP posts it (default: read from stdin).
    #[arg(long, value_name = "FILE")]
    pub alarm: Option<std::path::PathBuf>,
    /// When the instance's last plan change finished (RFC 3339); default: never.
    #[arg(long, value_name = "RFC3339")]
    pub last_change: Option<jiff::Timestamp>,
    /// The instance's extra disk now, in GB, for `disk_sizes` rules (default 0).
    #[arg(long, value_name = "GB", default_value_t = 0)]
    pub disk: u32,
    /// When the instance's last disk change finished (RFC 3339): the disk rules' cooldown
    /// counts from it; default: never.
    #[arg(long, value_name = "RFC3339")]
    pub last_disk_change: Option<jiff::Timestamp>,
    /// The time of the decision (RFC 3339); default: now.
    #[arg(long, value_name = "RFC3339")]
    pub now: Option<jiff::Timestamp>,
    /// The instance: integer id or UUID (default: the alarm's own instance id).
    #[arg(long, value_name = "ID")]
    pub instance: Option<crate::instance::InstanceRef>,
    /// The instance's name, for rules that select instances by name.
    #[arg(long, value_name = "NAME")]
    pub instance_name: Option<String>,
    /// Output format; json prints exactly one object.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Ask what one scale-down look decides instead (needs [scale_down] in the rules); the
    /// figures given stand for every look of the window. No alarm is read.
    #[arg(long, requires = "floor")]
    pub down: bool,
    /// With --down: the instance's floor (the plan before the daemon raised it).
    #[arg(long, value_name = "PLAN")]
    pub floor: Option<String>,
    /// With --down: when the last upward change finished (RFC 3339); default: never.
    #[arg(long, value_name = "RFC3339", requires = "down")]
    pub last_up: Option<jiff::Timestamp>,
    /// With --down: when the last downward change finished (RFC 3339); default: never.
    #[arg(long, value_name = "RFC3339", requires = "down")]
    pub last_down: Option<jiff::Timestamp>,
    /// With --down: when the last alarm for the instance was received (RFC 3339); default:
    /// never.
    #[arg(long, value_name = "RFC3339", requires = "down")]
    pub last_alarm: Option<jiff::Timestamp>,
    /// With --down: memory in use on the busiest node now, bytes or a size such as "1.2GiB";
    /// every node is taken to use as much. Without it the look has no metrics.
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes, requires = "down")]
    pub memory_used: Option<u64>,
    /// With --down: the smaller plan's per-node memory limit, as the daemon would have
    /// seen it (default: `memory_limits` of [scale_down], else unknown).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes, requires = "down")]
    pub memory_limit: Option<u64>,
    /// With --down: how many nodes the instance has now (default: the plan's -N suffix, else 1).
    #[arg(long, value_name = "N", requires = "down")]
    pub nodes: Option<u32>,
}

/// A byte count as written on the command line: `1073741824`, `1GiB`, `3.2 GiB`, `500MB`.
fn parse_bytes(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<bytesize::ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|e| format!("{text:?} is not a size in bytes: {e}"))
}

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
    let (id, uuid) = id_forms(instance);
    let view = InstanceView {
        names: InstanceNames {
            id: id.as_deref(),
            uuid: uuid.as_deref(),
            name: args.instance_name.as_deref(),
        },
        plan: &args.plan,
        last_change_finished: args.last_change,
        disk: args.disk,
        last_disk_change_finished: args.last_disk_change,
    };
    let now = args.now.unwrap_or_else(jiff::Timestamp::now);
    let decision = decide::decide(&rules, &alarm, &view, now, None);
    // The freezes hold here as in the daemon; pauses, max_changes and the budget need the
    // daemon's run-time figures.
    let instance_id = id.as_deref().and_then(|id| id.parse().ok()).unwrap_or(0);
    let decision = crate::guard::gate(
        &rules,
        decision,
        instance_id,
        view.names,
        &crate::guard::GuardFigures::NONE,
        now,
    );
    let text = match args.format {
        Format::Json => format!("{}\n", decision_json(&decision)),
        Format::Text => {
            explain_text(&rules, &alarm, &view, &decision) + &holding_back(&rules, &view, now)
        }
    };
    out.write_all(text.as_bytes())
        .map_err(|e| CommandError::Setup(format!("cannot write output: {e}")))
}

/// The integer id and the UUID an instance given on the command line answers to, as text.
pub(super) fn id_forms(instance: Option<InstanceRef>) -> (Option<String>, Option<String>) {
    match instance {
        Some(InstanceRef::Id(id)) => (Some(id.to_string()), None),
        Some(InstanceRef::Uuid(uuid)) => (None, Some(uuid.hyphenated().to_string())),
        None => (None, None),
    }
}

/// The contract's JSON object for a decision.
pub fn decision_json(decision: &Decision) -> serde_json::Value {
    match decision {
        Decision::Change(change) if change.kind == decide::ChangeKind::Disk => json!({
            "decision": "change_disk", "kind": "disk", "direction": change.direction,
            "from": change.from.parse::<u32>().ok(), "to": change.to.parse::<u32>().ok(),
            "rule": change.rule,
        }),
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
            "change {} ({}, rule {:?}; then cooldown {})\n",
            change.describe(),
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

/// What holds the daemon back at `now` beyond the rules: the freezes in force and the
/// schedules' open windows, and what only the running daemon knows.
pub(super) fn holding_back(
    rules: &RuleSet,
    view: &InstanceView<'_>,
    now: jiff::Timestamp,
) -> String {
    let mut text = String::new();
    for freeze in rules.freezes() {
        if let Some((_, until)) = freeze.window_around(now) {
            text += &format!("freeze in force until {until}: {}\n", freeze.describe());
        }
    }
    for schedule in rules.schedules() {
        if let Some(window) = schedule.window_around(now) {
            let selects = if schedule.selects(&view.names) {
                "selects this instance"
            } else {
                "does not select this instance"
            };
            text += &format!(
                "schedule {:?} is open (since {}, until {}): floor {} for the instances it selects; it {selects}\n",
                schedule.name, window.opened, window.closes, schedule.min_plan
            );
        }
    }
    let limits = rules.limits();
    if !rules.freezes().is_empty()
        || !rules.schedules().is_empty()
        || limits.max_changes.is_some()
        || limits.max_monthly_price.is_some()
    {
        text += "pauses, max_changes and max_monthly_price are checked by the running daemon with its own figures\n";
    }
    text
}
