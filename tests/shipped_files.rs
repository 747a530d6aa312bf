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
