//! The files we ship load, and say what the README says they say.

use std::path::Path;

use cloudamqp_autoscaler::alarm;
use cloudamqp_autoscaler::decide::{Decision, InstanceView, decide};
use cloudamqp_autoscaler::rules::{InstanceNames, RuleSet};
use cloudamqp_autoscaler::settings::{DEFAULT_TOML, Settings};

fn shipped_rules() -> RuleSet {
    RuleSet::load(Path::new("rules.toml")).expect("the shipped rules.toml is valid")
}

#[test]
fn shipped_rules_are_valid_without_warnings_and_cover_memory_and_cpu() {
    let rules = shipped_rules();
    assert!(rules.warnings().is_empty(), "{:?}", rules.warnings());
    let names: Vec<&str> = rules.ladders().iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["single", "cluster"]);
    assert!(rules.ladders().iter().all(|l| l.plans.len() == 8));
    for alarm_type in ["memory", "cpu"] {
        assert!(rules.rules_for(alarm_type).count() >= 2, "{alarm_type}");
    }
}

fn decide_shipped(example: &str, plan: &str) -> Decision {
    let body = std::fs::read(format!("examples/alarms/{example}")).unwrap();
    let alarm = alarm::parse(&body).unwrap();
    let view = InstanceView {
        names: InstanceNames {
            id: Some("359559"),
            ..InstanceNames::default()
        },
        plan,
        last_change_finished: None,
        disk: 0,
        last_disk_change_finished: None,
    };
    decide(
        &shipped_rules(),
        &alarm,
        &view,
        jiff::Timestamp::now(),
        None,
    )
}

#[test]
fn the_friday_evening_story_holds_with_the_shipped_rules() {
    let Decision::Change(change) = decide_shipped("memory-85.json", "bunny-1") else {
        panic!()
    };
    assert_eq!(
        (change.to.as_str(), change.rule.as_str()),
        ("hare-1", "memory-high")
    );
    let Decision::Change(change) = decide_shipped("memory-97.json", "bunny-1") else {
        panic!()
    };
    assert_eq!(
        (change.to.as_str(), change.rule.as_str()),
        ("rabbit-1", "memory-critical")
    );
    let Decision::Change(change) = decide_shipped("memory-85.json", "bunny-3") else {
        panic!()
    };
    assert_eq!(change.to, "hare-3");
    assert!(matches!(
        decide_shipped("memory-resolved.json", "bunny-1"),
        Decision::Skip(_)
    ));
}

#[test]
fn every_field_of_the_shipped_rules_is_commented() {
    let text = std::fs::read_to_string("rules.toml").unwrap();
    for field in [
        "cooldown",
        "name",
        "alarm",
        "above",
        "ladder",
        "steps",
        "max_plan",
        "targets",
        "instances",
    ] {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with('#') && l.contains(field)),
            "no comment explains {field}"
        );
    }
}

#[test]
fn default_settings_file_holds_every_contract_setting_with_a_comment() {
    let lines: Vec<&str> = DEFAULT_TOML.lines().collect();
    for key in [
        "live",
        "bind",
        "webhook_token",
        "admin_token",
        "api_url",
        "api_key",
        "default_instance",
        "poll_interval",
        "change_timeout",
        "path",
        "dir",
    ] {
        let at = lines
            .iter()
            .position(|l| {
                let l = l.trim_start_matches(['#', ' ']);
                l.starts_with(&format!("{key} =")) || l.starts_with(&format!("{key}="))
            })
            .unwrap_or_else(|| panic!("{key} missing from config/default.toml"));
        assert!(
            at > 0 && lines[at - 1].trim_start().starts_with('#'),
            "{key} has no comment above it"
        );
    }
    Settings::load_from(None, Vec::new()).expect("the defaults load");
}

/// The shipped file with its commented `[scale_down]` block uncommented: the leading `# `
/// stripped from the block's lines (from `# [scale_down]` to the end of the comment), and
/// nothing else touched. The block's own comments and optional keys stay commented.
fn with_scale_down_uncommented(text: &str) -> String {
    with_block_uncommented(text, "# [scale_down]")
}

/// `text` with the commented block that starts at the line `header` uncommented.
fn with_block_uncommented(text: &str, header: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| *l == header)
        .unwrap_or_else(|| panic!("rules.toml has a commented {header} block"));
    let end = lines[start..]
        .iter()
        .position(|l| !l.starts_with('#'))
        .map_or(lines.len(), |n| start + n);
    let mut out: Vec<String> = lines[..start].iter().map(|l| (*l).to_owned()).collect();
    for line in &lines[start..end] {
        let line = line.strip_prefix("# ").or(line.strip_prefix('#')).unwrap();
        out.push(line.to_owned());
    }
    out.extend(lines[end..].iter().map(|l| (*l).to_owned()));
    out.join("\n") + "\n"
}

#[test]
fn the_shipped_scale_down_block_is_commented_out_and_valid_once_uncommented() {
    // As shipped the daemon never steps down (and `serve --demo` appends its own section).
    assert!(shipped_rules().scale_down().is_none());
    let text = std::fs::read_to_string("rules.toml").unwrap();
    let uncommented = with_scale_down_uncommented(&text);
    let rules = cloudamqp_autoscaler::rules::parse("rules.toml", &uncommented)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(rules.warnings().is_empty(), "{:?}", rules.warnings());
    let section = rules.scale_down().expect("the block is a [scale_down]");
    let selectors: Vec<&str> = section.selectors.iter().map(|s| s.as_str()).collect();
    assert_eq!(selectors, ["*"]);
    let hour = std::time::Duration::from_secs(3600);
    assert_eq!(
        (section.quiet_for, section.after_up, section.after_down),
        (2 * hour, 6 * hour, 24 * hour)
    );
    assert_eq!(section.check_every, std::time::Duration::from_secs(300));
    assert_eq!(section.window, hour);
    assert_eq!(section.memory_headroom, 60.0);
    // The optional keys stay commented.
    assert_eq!(section.min_plan, None);
    assert!(section.memory_limits.is_empty());
    let hours = section.hours.as_ref().expect("hours are set");
    assert_eq!(hours.describe(), "sat,sun 02:00-06:00 UTC");
    assert!(hours.nominal_length() > section.window);
    // Every key of the block has its comment right above it.
    let block: Vec<&str> = uncommented
        .lines()
        .skip_while(|l| *l != "[scale_down]")
        .take_while(|l| !l.is_empty())
        .collect();
    for pair in block.windows(2) {
        if !pair[1].starts_with('#') {
            assert!(
                pair[0].starts_with('#'),
                "{:?} has no comment above it",
                pair[1]
            );
        }
    }

    // Its optional keys, uncommented too, are valid and mean what they say.
    let optional = uncommented
        .replacen("# min_plan = ", "min_plan = ", 1)
        .replace("# memory_limits = ", "memory_limits = ");
    let rules = cloudamqp_autoscaler::rules::parse("rules.toml", &optional)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(rules.warnings().is_empty(), "{:?}", rules.warnings());
    let section = rules.scale_down().unwrap();
    assert_eq!(section.min_plan.as_deref(), Some("bunny-1"));
    assert_eq!(section.memory_limits.get("hare-1"), Some(&3_435_973_836));
}

#[test]
fn the_shipped_guardrails_block_is_commented_out_and_valid_once_uncommented() {
    let shipped = shipped_rules();
    assert!(shipped.freezes().is_empty() && shipped.schedules().is_empty());
    assert!(shipped.limits().max_changes.is_none());
    let text = std::fs::read_to_string("rules.toml").unwrap();
    let uncommented = with_block_uncommented(&text, "# [limits]");
    let rules = cloudamqp_autoscaler::rules::parse("rules.toml", &uncommented)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(rules.warnings().is_empty(), "{:?}", rules.warnings());
    let max = rules.limits().max_changes.unwrap();
    assert_eq!((max.count, max.per.as_secs()), (4, 24 * 3600));
    assert_eq!(rules.limits().max_monthly_price, Some(3000.0));
    assert_eq!(rules.freezes().len(), 2);
    assert_eq!(rules.schedules().len(), 1);
    assert_eq!(rules.schedules()[0].min_plan, "hare-1");
}
