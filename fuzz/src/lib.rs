//! The checks the fuzz targets run, shared so that every target asserts the same things.
//!
//! Each check panics (and so makes libFuzzer report a crash) when a parser or `decide`
//! breaks one of its promises; returning normally means the input was handled correctly,
//! whether it was accepted or refused.

use std::collections::BTreeSet;

use cloudamqp_autoscaler::alarm::{self, Alarm};
use cloudamqp_autoscaler::decide::{Decision, InstanceView, PlanPrices, Reason, decide};
use cloudamqp_autoscaler::redact::redact_json;
use cloudamqp_autoscaler::rules::{self, Action, InstanceNames, Location, RuleSet, RulesFailure};
use jiff::{SignedDuration, Timestamp};

/// The name every fuzzed rules file is parsed under.
pub const FILE: &str = "fuzz.toml";

/// `alarm`: a webhook body never panics the parser; an accepted one is normalised, and its
/// redacted journal copy parses back to the very same alarm.
pub fn check_alarm(body: &[u8]) {
    let parsed = alarm::parse_with_json(body);
    assert_eq!(
        alarm::parse(body),
        parsed.clone().map(|(alarm, _)| alarm),
        "parse and parse_with_json disagree"
    );
    let Ok((alarm, json)) = parsed else {
        return;
    };
    check_alarm_shape(&alarm);
    let redacted = redact_json(json);
    let again = alarm::parse(redacted.as_bytes()).unwrap_or_else(|e| {
        panic!("the redacted body {redacted:?} no longer parses: {e}");
    });
    assert_eq!(
        again, alarm,
        "the redacted body {redacted:?} parses to another alarm"
    );
}

/// What every accepted alarm looks like.
pub fn check_alarm_shape(alarm: &Alarm) {
    assert!(!alarm.kind.is_empty(), "empty alarm type");
    assert_eq!(
        alarm.kind,
        alarm.kind.to_lowercase(),
        "alarm type not lower-case"
    );
    assert_eq!(alarm.kind, alarm.kind.trim(), "alarm type not trimmed");
    if let Some(value) = alarm.value {
        assert!(value.is_finite(), "non-finite value {value}");
    }
}

/// `rules`: any text either loads, and then decides sanely, or is refused with errors
/// that all point inside the text.
pub fn check_rules(text: &str) {
    match rules::parse(FILE, text) {
        Ok(set) => {
            for warning in set.warnings() {
                check_location(text, &warning.location);
                let _ = warning.to_string();
            }
            for mention in set.plan_mentions() {
                check_location(text, &mention.location);
            }
            check_decisions(&set);
        }
        Err(failure) => check_failure(text, &failure),
    }
}

/// A refused file: named, with at least one error, each inside the text.
pub fn check_failure(text: &str, failure: &RulesFailure) {
    match failure {
        RulesFailure::Invalid { file, errors } => {
            assert_eq!(file, FILE);
            assert!(!errors.is_empty(), "refused without a single error");
            for error in errors {
                check_location(text, &error.location);
                assert!(!error.message.is_empty(), "an error without a message");
            }
            assert_eq!(failure.lines().len(), errors.len());
        }
        RulesFailure::Io { .. } => panic!("an I/O error from parsing text: {failure}"),
    }
}

/// `location` names `FILE`, and a line and a column (1-based, in characters) that exist in
/// `text`: at most one past the last line, at most one past the end of its line.
pub fn check_location(text: &str, location: &Location) {
    assert_eq!(location.file, FILE);
    assert!(location.line >= 1, "line 0: {location:?}");
    assert!(location.column >= 1, "column 0: {location:?}");
    assert!(
        location.line <= text.lines().count() + 1,
        "line past the end of the text: {location:?}"
    );
    // Split on '\n' only: that is what a location counts.
    let line = text
        .split('\n')
        .nth(location.line - 1)
        .unwrap_or_else(|| panic!("no line {} in the text: {location:?}", location.line));
    assert!(
        location.column <= line.chars().count() + 1,
        "column past the end of line {}: {location:?}",
        location.line
    );
}

/// Some prices, unrelated to the ladders, so price comparison is exercised too.
#[derive(Debug)]
struct Prices;

impl PlanPrices for Prices {
    fn price(&self, plan: &str) -> Option<f64> {
        if plan.starts_with('x') {
            return None;
        }
        let sum: u32 = plan.bytes().map(u32::from).sum();
        Some(f64::from(sum % 997))
    }
}

const VALUES: &[Option<f64>] = &[
    None,
    Some(-1e300),
    Some(0.0),
    Some(50.0),
    Some(80.0),
    Some(80.5),
    Some(95.5),
    Some(1e300),
];
const UUID: &str = "4e683759-5eb9-41b3-8794-26f751de5699";
const INSTANCES: &[InstanceNames<'static>] = &[
    InstanceNames {
        id: None,
        uuid: None,
        name: None,
    },
    InstanceNames {
        id: Some("359559"),
        uuid: Some(UUID),
        name: Some("prod-eu"),
    },
    InstanceNames {
        id: Some("1"),
        uuid: None,
        name: Some("staging"),
    },
];

/// Plans worth deciding for: the first rungs and the top of each ladder, the plans of
/// targets maps, and one plan the file does not know.
fn plans_of(set: &RuleSet) -> Vec<String> {
    let mut plans = BTreeSet::new();
    for ladder in set.ladders().iter().take(4) {
        plans.extend(ladder.plans.iter().take(4).cloned());
        plans.extend(ladder.plans.last().cloned());
    }
    for rule in set.rules().iter().take(8) {
        if let Action::Targets(map) = &rule.action {
            for (from, to) in map.iter().take(3) {
                plans.insert(from.clone());
                plans.insert(to.clone());
            }
        }
    }
    let mut plans: Vec<String> = plans.into_iter().take(14).collect();
    plans.push("no-such-plan".to_owned());
    plans
}

/// Alarm types worth deciding for: those of the rules, and one no rule handles.
fn kinds_of(set: &RuleSet) -> Vec<String> {
    let mut kinds: BTreeSet<String> = set.rules().iter().map(|r| r.alarm.clone()).collect();
    kinds.insert("no-such-type".to_owned());
    kinds.into_iter().take(4).collect()
}

/// `decide` over a rule set: never a panic, never a change to the plan the instance is
/// on, a change always the one its rule computes, cooldowns only ever turning a change
/// into `cooldown`.
pub fn check_decisions(set: &RuleSet) {
    let now: Timestamp = "2026-11-26T17:00:00Z".parse().expect("a timestamp");
    let finished = [
        now - SignedDuration::from_mins(10),
        now - SignedDuration::from_mins(30),
        Timestamp::MIN,
    ];
    let plans = plans_of(set);
    let mut variant = 0usize;
    for kind in kinds_of(set) {
        for plan in &plans {
            variant += 1;
            let alarm = Alarm {
                kind: kind.clone(),
                value: VALUES[variant % VALUES.len()],
                instance: None,
                resolved: variant % 23 == 0,
                message: None,
                triggered_at: None,
            };
            let names = INSTANCES[variant % INSTANCES.len()];
            let prices: Option<&dyn PlanPrices> = if variant % 2 == 0 {
                Some(&Prices)
            } else {
                None
            };
            check_decision(
                set,
                &alarm,
                names,
                plan,
                now,
                finished[variant % finished.len()],
                prices,
            );
        }
    }
}

/// One alarm on one plan, decided without and then with a previous change.
pub fn check_decision(
    set: &RuleSet,
    alarm: &Alarm,
    names: InstanceNames<'_>,
    plan: &str,
    now: Timestamp,
    finished: Timestamp,
    prices: Option<&dyn PlanPrices>,
) {
    let fresh = InstanceView {
        names,
        plan,
        last_change_finished: None,
    };
    let decision = decide(set, alarm, &fresh, now, prices);
    match &decision {
        Decision::Change(change) => {
            assert!(!alarm.resolved, "a resolve notification changed a plan");
            assert_eq!(change.from, plan, "a change from another plan");
            assert_ne!(change.to, plan, "a change to the plan the instance is on");
            let rule = set
                .rules()
                .iter()
                .find(|r| r.name == change.rule)
                .unwrap_or_else(|| panic!("a change by an unknown rule: {change:?}"));
            assert_eq!(rule.alarm, alarm.kind, "a change by a rule of another type");
            assert_eq!(change.cooldown, set.cooldown_of(rule));
            match &rule.action {
                Action::Ladder { ladder, steps, cap } => {
                    let ladder = &set.ladders()[*ladder];
                    let from = ladder
                        .rung(plan)
                        .expect("a ladder change from off the ladder");
                    let to = ladder
                        .rung(&change.to)
                        .expect("a ladder change off the ladder");
                    assert!(to > from, "a ladder rule moved a plan down: {change:?}");
                    assert_eq!(to, (from + steps).min(*cap), "the wrong rung: {change:?}");
                }
                Action::Targets(map) => {
                    assert_eq!(map.get(plan), Some(&change.to), "not the mapped target")
                }
            }
        }
        Decision::Skip(skip) => {
            if alarm.resolved {
                assert_eq!(skip.reason, Reason::Resolved);
            } else if set.rules_for(&alarm.kind).next().is_none() {
                assert_eq!(skip.reason, Reason::NoMatchingRule);
            } else {
                assert!(
                    skip.reason < Reason::Cooldown,
                    "skipped without a previous change for {}",
                    skip.reason
                );
                let rule = skip.rule.as_deref().expect("a skip names its rule");
                assert!(
                    set.rules_for(&alarm.kind).any(|r| r.name == rule),
                    "a skip blamed on a rule of another type"
                );
            }
            assert!(!skip.detail.is_empty());
        }
    }

    // The same alarm after a change that finished at `finished`: only the cooldown of the
    // rule that would act can turn the change into a skip; nothing else may differ.
    let cooled = InstanceView {
        last_change_finished: Some(finished),
        ..fresh
    };
    let later = decide(set, alarm, &cooled, now, prices);
    match decision {
        Decision::Change(change) => {
            let over = cloudamqp_autoscaler::clock::add(finished, change.cooldown);
            if now < over {
                match later {
                    Decision::Skip(skip) => {
                        assert_eq!(skip.reason, Reason::Cooldown, "{skip:?}");
                        assert_eq!(skip.rule.as_deref(), Some(change.rule.as_str()));
                    }
                    other => panic!("a change during the cooldown: {other:?}"),
                }
            } else {
                assert_eq!(later, Decision::Change(change), "the cooldown is over");
            }
        }
        skip => assert_eq!(later, skip, "a previous change altered a skip"),
    }
}
