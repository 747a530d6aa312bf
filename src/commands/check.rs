//! `check`: validate the rules file and summarise it.

use std::io::Write;
use std::path::Path;

use serde_json::json;

use super::{CommandError, Format};
use crate::cloudamqp::{Catalogue, OnlineCheck, check_rules_online};
use crate::rules::{
    Action, Hours, RuleError, RuleSet, RulesFailure, ScaleDown, Selector, Threshold,
};
use crate::settings::Settings;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The rules file (default: the `rules.path` setting, "rules.toml").
    #[arg(long, value_name = "FILE")]
    pub rules: Option<std::path::PathBuf>,
    /// Also check every plan name against the live catalogue (needs the API key); warn on
    /// ladders that mix shared/dedicated plans or backends, or are not ascending by price.
    #[arg(long)]
    pub online: bool,
    /// The time the schedules' next openings and DST warnings count from (RFC 3339);
    /// default: now.
    #[arg(long, value_name = "TIME")]
    pub now: Option<jiff::Timestamp>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Runs `check`. Invalid rules: every problem on `err` (text) or in the JSON object on
/// `out`, and exit 1.
pub fn run(
    config: Option<&Path>,
    args: CheckArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), CommandError> {
    // Settings give the rules path when --rules is absent, and the API for --online.
    let (path, settings) = super::rules_path(config, args.rules, args.online)?;
    let now = args.now.unwrap_or_else(jiff::Timestamp::now);
    let io = |e: std::io::Error| CommandError::Setup(format!("cannot write output: {e}"));
    match RuleSet::load(&path) {
        Ok(rules) => {
            let online = match &settings {
                Some(settings) if args.online => Some(online_check(settings, &rules)?),
                _ => None,
            };
            match args.format {
                Format::Text => {
                    out.write_all(summary(&rules, now).as_bytes()).map_err(io)?;
                    if let Some(online) = &online {
                        for warning in &online.warnings {
                            writeln!(out, "warning: {warning}").map_err(io)?;
                        }
                        for error in &online.errors {
                            writeln!(err, "{error}").map_err(io)?;
                        }
                    }
                }
                Format::Json => {
                    let mut object = json_summary(&rules);
                    for (key, value) in super::check_guard::json(&rules, now) {
                        object[key] = value;
                    }
                    if let Some(online) = &online {
                        object["valid"] = json!(online.errors.is_empty());
                        object["online"] =
                            json!({"errors": online.errors, "warnings": online.warnings});
                    }
                    writeln!(out, "{object}").map_err(io)?;
                }
            }
            match online {
                Some(online) if !online.errors.is_empty() => Err(CommandError::Invalid(format!(
                    "{}: {} plan{} not in the live catalogue",
                    rules.source().path,
                    online.errors.len(),
                    plural(online.errors.len())
                ))),
                _ => Ok(()),
            }
        }
        Err(RulesFailure::Invalid { file, errors }) => {
            let count = errors.len();
            match args.format {
                Format::Text => {
                    for error in &errors {
                        writeln!(err, "{error}").map_err(io)?;
                    }
                }
                Format::Json => {
                    let object = json!({"valid": false, "file": file, "errors": errors.iter().map(error_json).collect::<Vec<_>>()});
                    writeln!(out, "{object}").map_err(io)?;
                }
            }
            Err(CommandError::Invalid(format!(
                "{file}: {count} problem{}; the file is refused whole",
                if count == 1 { "" } else { "s" }
            )))
        }
        Err(failure @ RulesFailure::Io { .. }) => Err(CommandError::Setup(failure.to_string())),
    }
}

/// Every plan the file mentions against the live catalogue, and the ladders' lint.
fn online_check(settings: &Settings, rules: &RuleSet) -> Result<OnlineCheck, CommandError> {
    let catalogue = Catalogue::new(super::plans::fetch_plans(settings)?);
    let ladders: Vec<(String, Vec<String>)> = rules
        .ladders()
        .iter()
        .map(|l| (l.name.clone(), l.plans.clone()))
        .collect();
    let mentions: Vec<(String, String)> = rules
        .plan_mentions()
        .iter()
        .map(|m| (m.plan.clone(), format!("{}: {}", m.location, m.context)))
        .collect();
    let mut check = check_rules_online(&catalogue, &ladders, &mentions);
    check
        .warnings
        .extend(alarm_drift(settings, rules, &catalogue)?);
    Ok(check)
}

/// How the live alarms of the instances the rules manage differ from what `setup` would
/// make of them: warnings, never errors.
fn alarm_drift(
    settings: &Settings,
    rules: &RuleSet,
    catalogue: &Catalogue,
) -> Result<Vec<String>, CommandError> {
    let client = crate::cloudamqp::CloudAmqpClient::new(
        &settings.cloudamqp,
        crate::clock::SystemClock::shared(),
    )?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CommandError::Setup(format!("cannot start the async runtime: {e}")))?;
    let warnings = runtime.block_on(crate::setup::drift_report(&client, rules, catalogue))?;
    Ok(warnings.iter().map(|w| crate::setup::scrub(w)).collect())
}

fn error_json(e: &RuleError) -> serde_json::Value {
    json!({
        "file": e.location.file,
        "line": e.location.line,
        "column": e.location.column,
        "context": e.context,
        "message": e.message,
        "text": e.to_string(),
    })
}

/// The human summary: ladders, rules, `[scale_down]`, then warnings.
pub fn summary(rules: &RuleSet, now: jiff::Timestamp) -> String {
    let mut text = format!(
        "{}: valid: {} ladder{}, {} rule{} (default cooldown {})\n",
        rules.source().path,
        rules.ladders().len(),
        plural(rules.ladders().len()),
        rules.rules().len(),
        plural(rules.rules().len()),
        crate::duration::display(rules.default_cooldown()),
    );
    for ladder in rules.ladders() {
        text += &format!("  ladder {}: {}\n", ladder.name, ladder.plans.join(" < "));
    }
    for rule in rules.rules() {
        text += &format!("  rule {}: {}\n", rule.name, describe_rule(rules, rule));
    }
    text += &format!(
        "  scale down: {}\n",
        describe_scale_down(rules.scale_down())
    );
    text += &super::check_guard::summary(rules, now);
    for warning in rules.warnings() {
        text += &format!("warning: {warning}\n");
    }
    text
}

fn describe_rule(rules: &RuleSet, rule: &crate::rules::Rule) -> String {
    let when = match rule.threshold {
        Some(Threshold::Above(x)) => format!("{} alarm above {x}", rule.alarm),
        Some(Threshold::Below(x)) => format!("{} alarm below {x}", rule.alarm),
        None => format!("any {} alarm", rule.alarm),
    };
    let action = match &rule.action {
        Action::Ladder { ladder, steps, cap } => {
            let ladder = &rules.ladders()[*ladder];
            format!(
                "climb {steps} rung{} of {} up to {}",
                plural(*steps),
                ladder.name,
                ladder.plans[*cap]
            )
        }
        Action::Targets(map) => {
            let mut moves: Vec<String> = map
                .iter()
                .map(|(from, to)| format!("{from} -> {to}"))
                .collect();
            moves.sort();
            format!("targets {}", moves.join(", "))
        }
        Action::Disk(sizes) => format!(
            "grow the extra disk one size at a time: {} GB",
            sizes
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    format!(
        "{when}: {action}; {}; cooldown {}",
        describe_instances(&rule.selectors),
        crate::duration::display(rules.cooldown_of(rule))
    )
}

/// `all instances` or `instances prod-*, 359559`, for rules and `[scale_down]` alike.
pub(super) fn describe_instances(selectors: &[Selector]) -> String {
    if selectors.is_empty() {
        "all instances".to_owned()
    } else {
        format!(
            "instances {}",
            selectors
                .iter()
                .map(Selector::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// One line: what `[scale_down]` selects, its gates and its optional limits.
fn describe_scale_down(scale_down: Option<&ScaleDown>) -> String {
    let Some(section) = scale_down else {
        return "off (no [scale_down]: plans are never moved down)".to_owned();
    };
    let display = crate::duration::display;
    let mut text = format!(
        "{}; quiet for {}, after up {}, after down {}; a look every {}, a step after {} of passing looks; memory headroom {} %",
        describe_instances(&section.selectors),
        display(section.quiet_for),
        display(section.after_up),
        display(section.after_down),
        display(section.check_every),
        display(section.window),
        section.memory_headroom,
    );
    if let Some(plan) = &section.min_plan {
        text += &format!("; min plan {plan}");
    }
    if !section.memory_limits.is_empty() {
        let limits: Vec<String> = sorted_limits(section)
            .into_iter()
            .map(|(plan, bytes)| format!("{plan} = {}", bytesize::ByteSize(bytes).display().iec()))
            .collect();
        text += &format!("; memory limits {}", limits.join(", "));
    }
    if let Some(hours) = &section.hours {
        text += &format!("; hours {}", hours.describe());
    }
    text
}

/// `memory_limits` in plan-name order, so the summary is the same on every run.
fn sorted_limits(section: &ScaleDown) -> Vec<(&str, u64)> {
    let mut limits: Vec<(&str, u64)> = section
        .memory_limits
        .iter()
        .map(|(plan, bytes)| (plan.as_str(), *bytes))
        .collect();
    limits.sort_unstable();
    limits
}

fn scale_down_json(scale_down: Option<&ScaleDown>) -> serde_json::Value {
    let Some(section) = scale_down else {
        return serde_json::Value::Null;
    };
    let display = crate::duration::display;
    let limits: serde_json::Map<String, serde_json::Value> = sorted_limits(section)
        .into_iter()
        .map(|(plan, bytes)| (plan.to_owned(), json!(bytes)))
        .collect();
    json!({
        "instances": section.selectors.iter().map(Selector::as_str).collect::<Vec<_>>(),
        "quiet_for": display(section.quiet_for),
        "after_up": display(section.after_up),
        "after_down": display(section.after_down),
        "check_every": display(section.check_every),
        "window": display(section.window),
        "memory_headroom": section.memory_headroom,
        "min_plan": section.min_plan,
        "memory_limits": limits,
        "hours": section.hours.as_ref().map(hours_json),
    })
}

fn hours_json(hours: &Hours) -> serde_json::Value {
    let days: Vec<&str> = hours
        .days
        .iter()
        .filter_map(|day| {
            crate::rules::DAY_NAMES
                .iter()
                .find(|(_, weekday)| weekday == day)
                .map(|(name, _)| *name)
        })
        .collect();
    json!({
        "days": days,
        "from": hours.from.strftime("%H:%M").to_string(),
        "to": hours.to.strftime("%H:%M").to_string(),
        "timezone": hours.zone_name,
    })
}

fn json_summary(rules: &RuleSet) -> serde_json::Value {
    json!({
        "valid": true,
        "file": rules.source().path,
        "hash": rules.source().hash,
        "ladders": rules.ladders().iter().map(|l| json!({"name": l.name, "plans": l.plans})).collect::<Vec<_>>(),
        "rules": rules.rules().iter().map(|r| json!({"name": r.name, "alarm": r.alarm, "summary": describe_rule(rules, r)})).collect::<Vec<_>>(),
        "scale_down": scale_down_json(rules.scale_down()),
        "warnings": rules.warnings().iter().map(error_json).collect::<Vec<_>>(),
    })
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
