//! The decision table: `decide` on one rules file across every reason code, bands,
//! caps, targets maps, selectors, thresholds, string values, resolves, cooldown edges
//! and ties.

use cloudamqp_autoscaler::alarm;
use cloudamqp_autoscaler::decide::{
    Decision, InstanceView, PlanPrices, Reason, cooling_down_until, decide,
};
use cloudamqp_autoscaler::instance::InstanceRef;
use cloudamqp_autoscaler::rules::{InstanceNames, RuleSet};
use jiff::Timestamp;

const NOW: &str = "2026-11-26T18:00:00Z";
const UUID: &str = "4e683759-5eb9-41b3-8794-26f751de5699";

#[derive(Debug, PartialEq)]
enum Want {
    Change(&'static str, &'static str),
    Skip(Reason),
}
use Want::{Change, Skip};

struct Case {
    what: &'static str,
    alarm: &'static str,
    plan: &'static str,
    /// Instance name, for selectors by name.
    name: Option<&'static str>,
    /// Minutes before NOW the last change finished.
    finished_ago: Option<f64>,
    want: Want,
}

const fn case(what: &'static str, alarm: &'static str, plan: &'static str, want: Want) -> Case {
    Case {
        what,
        alarm,
        plan,
        name: None,
        finished_ago: None,
        want,
    }
}

fn cases() -> Vec<Case> {
    let named = |mut c: Case, name| {
        c.name = Some(name);
        c
    };
    let finished = |mut c: Case, minutes| {
        c.finished_ago = Some(minutes);
        c
    };
    let memory_85 = r#"{"alarm_type":"memory","value":85,"instance_id":359559}"#;
    vec![
        case(
            "resolve is checked first",
            r#"{"alarm_type":"memory","value":99,"resolved":true}"#,
            "bunny-1",
            Skip(Reason::Resolved),
        ),
        case(
            "resolve under metadata, unknown type",
            r#"{"type":"nope","metadata":{"resolved":true}}"#,
            "bunny-1",
            Skip(Reason::Resolved),
        ),
        case(
            "unknown alarm type",
            r#"{"type":"nope","value":99}"#,
            "bunny-1",
            Skip(Reason::NoMatchingRule),
        ),
        case(
            "known type without rules",
            r#"{"type":"ssh","value":99}"#,
            "bunny-1",
            Skip(Reason::NoMatchingRule),
        ),
        case(
            "the Friday-evening spike",
            memory_85,
            "bunny-1",
            Change("hare-1", "memory-high"),
        ),
        case(
            "value as a numeric string",
            r#"{"alarm_type":"memory","value":"85"}"#,
            "bunny-1",
            Change("hare-1", "memory-high"),
        ),
        case(
            "threshold is strict: exactly 80",
            r#"{"alarm_type":"memory","value":80}"#,
            "bunny-1",
            Skip(Reason::BelowThreshold),
        ),
        case(
            "just above the threshold",
            r#"{"alarm_type":"memory","value":"80.01"}"#,
            "bunny-1",
            Change("hare-1", "memory-high"),
        ),
        case(
            "a threshold rule ignores an alarm without value",
            r#"{"alarm_type":"memory"}"#,
            "bunny-1",
            Skip(Reason::BelowThreshold),
        ),
        case(
            "severity band: over 95 climbs two rungs",
            r#"{"alarm_type":"memory","value":97}"#,
            "bunny-1",
            Change("rabbit-1", "memory-critical"),
        ),
        case(
            "band capped by max_plan ties with the one-rung rule: first listed wins",
            r#"{"alarm_type":"memory","value":97}"#,
            "panda-1",
            Change("ape-1", "memory-critical"),
        ),
        case("at max_plan", memory_85, "ape-1", Skip(Reason::TopOfLadder)),
        case(
            "above max_plan",
            memory_85,
            "hippo-1",
            Skip(Reason::TopOfLadder),
        ),
        case(
            "plan on no ladder",
            memory_85,
            "lemur",
            Skip(Reason::NotOnLadder),
        ),
        case(
            "another ladder of the same type",
            memory_85,
            "bunny-3",
            Change("hare-3", "cluster-memory"),
        ),
        case(
            "top of a ladder without max_plan",
            memory_85,
            "panda-3",
            Skip(Reason::TopOfLadder),
        ),
        case(
            "below every threshold",
            r#"{"alarm_type":"memory","value":70}"#,
            "ape-1",
            Skip(Reason::BelowThreshold),
        ),
        case(
            "selector by integer id (TOML integer)",
            r#"{"type":"cpu","value":95,"instance_id":359559}"#,
            "bunny-1",
            Change("hare-1", "cpu-prod"),
        ),
        named(
            case(
                "selector by name glob",
                r#"{"type":"cpu","value":95,"instance_id":1}"#,
                "bunny-1",
                Change("hare-1", "cpu-prod"),
            ),
            "prod-eu",
        ),
        named(
            case(
                "name not selected",
                r#"{"type":"cpu","value":95,"instance_id":1}"#,
                "bunny-1",
                Skip(Reason::InstanceNotSelected),
            ),
            "staging",
        ),
        case(
            "no instance known at all",
            r#"{"type":"cpu","value":95}"#,
            "bunny-1",
            Skip(Reason::InstanceNotSelected),
        ),
        named(
            case(
                "selection is checked before the threshold",
                r#"{"type":"cpu","value":50,"instance_id":1}"#,
                "bunny-1",
                Skip(Reason::InstanceNotSelected),
            ),
            "staging",
        ),
        named(
            case(
                "selected but below threshold",
                r#"{"type":"cpu","value":50,"instance_id":1}"#,
                "bunny-1",
                Skip(Reason::BelowThreshold),
            ),
            "prod-eu",
        ),
        case(
            "targets beat a lower ladder target",
            r#"{"type":"disk","value":90}"#,
            "bunny-1",
            Change("rabbit-1", "disk-targets"),
        ),
        case(
            "targets and ladder tie: first listed",
            r#"{"type":"disk","value":90}"#,
            "rabbit-1",
            Change("panda-1", "disk-targets"),
        ),
        case(
            "plan missing from targets, ladder acts",
            r#"{"type":"disk","value":90}"#,
            "hare-1",
            Change("rabbit-1", "disk-ladder"),
        ),
        case(
            "no max_plan: up to the top",
            r#"{"type":"disk","value":90}"#,
            "ape-1",
            Change("hippo-1", "disk-ladder"),
        ),
        case(
            "top beats not-on-targets as the furthest reason",
            r#"{"type":"disk","value":90}"#,
            "hippo-1",
            Skip(Reason::TopOfLadder),
        ),
        case(
            "below = 5 holds for 3",
            r#"{"type":"consumer","value":3}"#,
            "bunny-1",
            Change("hare-1", "consumers-low"),
        ),
        case(
            "below is strict too",
            r#"{"type":"consumer","value":5}"#,
            "bunny-1",
            Skip(Reason::BelowThreshold),
        ),
        case(
            "no threshold: any alarm acts; identical targets tie to the first",
            r#"{"type":"connection"}"#,
            "bunny-1",
            Change("hare-1", "connections-a"),
        ),
        case(
            "UUID selector, UUID upper-cased in the alarm",
            r#"{"type":"flow","instance":"4E683759-5EB9-41B3-8794-26F751DE5699"}"#,
            "hare-1",
            Change("rabbit-1", "flow-one-instance"),
        ),
        case(
            "UUID selector, other instance",
            r#"{"type":"flow","instance":"00000000-5eb9-41b3-8794-26f751de5699"}"#,
            "hare-1",
            Skip(Reason::InstanceNotSelected),
        ),
        named(
            case(
                "? matches one character",
                r#"{"type":"netsplit","instance":7}"#,
                "bunny-1",
                Change("hare-1", "netsplit-glob"),
            ),
            "prod-1",
        ),
        named(
            case(
                "? matches exactly one",
                r#"{"type":"netsplit","instance":7}"#,
                "bunny-1",
                Skip(Reason::InstanceNotSelected),
            ),
            "prod-10",
        ),
        case(
            "incomparable targets without prices: first listed",
            r#"{"type":"notice"}"#,
            "bunny-1",
            Change("custom-a", "notice-a"),
        ),
        finished(
            case(
                "inside the default cooldown",
                memory_85,
                "bunny-1",
                Skip(Reason::Cooldown),
            ),
            10.0,
        ),
        finished(
            case(
                "exactly at the end of the cooldown",
                memory_85,
                "bunny-1",
                Change("hare-1", "memory-high"),
            ),
            30.0,
        ),
        finished(
            case(
                "one second before the end",
                memory_85,
                "bunny-1",
                Skip(Reason::Cooldown),
            ),
            30.0 - 1.0 / 60.0,
        ),
        finished(
            case(
                "the winner's own cooldown, no fallback to a lesser rule",
                r#"{"alarm_type":"memory","value":97}"#,
                "bunny-1",
                Skip(Reason::Cooldown),
            ),
            40.0,
        ),
        finished(
            case(
                "past the default cooldown",
                memory_85,
                "bunny-1",
                Change("hare-1", "memory-high"),
            ),
            40.0,
        ),
        finished(
            case(
                "a shorter rule cooldown",
                r#"{"type":"cpu","value":95,"instance_id":359559}"#,
                "bunny-1",
                Change("hare-1", "cpu-prod"),
            ),
            11.0,
        ),
        finished(
            case(
                "cooldown is not reported when nothing would change",
                memory_85,
                "ape-1",
                Skip(Reason::TopOfLadder),
            ),
            1.0,
        ),
        finished(
            case(
                "a resolve in cooldown is still a resolve",
                r#"{"alarm_type":"memory","value":97,"resolved":true}"#,
                "bunny-1",
                Skip(Reason::Resolved),
            ),
            1.0,
        ),
    ]
}

fn rules() -> RuleSet {
    RuleSet::load(std::path::Path::new(
        "tests/fixtures/rules/decision-table.toml",
    ))
    .unwrap()
}

fn run(rules: &RuleSet, case: &Case, prices: Option<&dyn PlanPrices>) -> Decision {
    let alarm = alarm::parse(case.alarm.as_bytes()).unwrap();
    let (id, uuid) = match alarm.instance {
        Some(InstanceRef::Id(id)) => (Some(id.to_string()), None),
        Some(InstanceRef::Uuid(u)) => (None, Some(u.to_string())),
        None => (None, None),
    };
    let now: Timestamp = NOW.parse().unwrap();
    let finished = case
        .finished_ago
        .map(|minutes| now - jiff::SignedDuration::from_secs_f64(minutes * 60.0));
    let view = InstanceView {
        names: InstanceNames {
            id: id.as_deref(),
            uuid: uuid.as_deref(),
            name: case.name,
        },
        plan: case.plan,
        last_change_finished: finished,
        disk: 0,
        last_disk_change_finished: None,
    };
    decide(rules, &alarm, &view, now, prices)
}

#[test]
fn decision_table() {
    let rules = rules();
    let cases = cases();
    assert!(cases.len() >= 30);
    let mut failures = Vec::new();
    for case in &cases {
        let got = match run(&rules, case, None) {
            Decision::Change(c) => {
                assert_eq!(c.from, case.plan, "{}", case.what);
                Want::Change(
                    Box::leak(c.to.into_boxed_str()),
                    Box::leak(c.rule.into_boxed_str()),
                )
            }
            Decision::Skip(s) => {
                assert!(!s.detail.is_empty(), "{}", case.what);
                Want::Skip(s.reason)
            }
        };
        if got != case.want {
            failures.push(format!("{}: want {:?}, got {got:?}", case.what, case.want));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_explain_reason_code_is_covered_by_the_table() {
    let covered: Vec<Reason> = cases()
        .iter()
        .filter_map(|c| match c.want {
            Skip(reason) => Some(reason),
            Change(..) => None,
        })
        .collect();
    for reason in [
        Reason::Resolved,
        Reason::NoMatchingRule,
        Reason::InstanceNotSelected,
        Reason::BelowThreshold,
        Reason::NotOnLadder,
        Reason::TopOfLadder,
        Reason::Cooldown,
    ] {
        assert!(covered.contains(&reason), "{reason} not covered");
    }
}

struct Prices;
impl PlanPrices for Prices {
    fn price(&self, plan: &str) -> Option<f64> {
        match plan {
            "custom-a" => Some(100.0),
            "custom-b" => Some(200.0),
            _ => None,
        }
    }
}

#[test]
fn with_a_catalogue_the_pricier_target_wins_whatever_the_order() {
    let rules = rules();
    let case = case(
        "notice",
        r#"{"type":"notice"}"#,
        "bunny-1",
        Change("custom-b", "notice-b"),
    );
    match run(&rules, &case, Some(&Prices)) {
        Decision::Change(c) => {
            assert_eq!((c.to.as_str(), c.rule.as_str()), ("custom-b", "notice-b"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn skip_details_name_the_rule_and_the_facts() {
    let rules = rules();
    let details: Vec<(Reason, String, Option<String>)> = [
        case(
            "below",
            r#"{"alarm_type":"memory","value":70}"#,
            "bunny-1",
            Skip(Reason::BelowThreshold),
        ),
        Case {
            finished_ago: Some(10.0),
            ..case(
                "cooldown",
                r#"{"alarm_type":"memory","value":85}"#,
                "bunny-1",
                Skip(Reason::Cooldown),
            )
        },
    ]
    .iter()
    .map(|c| match run(&rules, c, None) {
        Decision::Skip(s) => (s.reason, s.detail, s.rule),
        other => panic!("{other:?}"),
    })
    .collect();
    assert_eq!(
        details[0].1,
        "rule \"memory-critical\" needs memory above 95; the alarm says 70"
    );
    assert_eq!(details[0].2.as_deref(), Some("memory-critical"));
    assert!(
        details[1]
            .1
            .contains("cooling down until 2026-11-26T18:20:00Z"),
        "{}",
        details[1].1
    );
    assert!(details[1].1.contains("cooldown 30m"), "{}", details[1].1);
    assert_eq!(details[1].2.as_deref(), Some("memory-high"));
}

#[test]
fn the_uuid_used_in_the_table_is_the_selectors() {
    assert!(
        std::fs::read_to_string("tests/fixtures/rules/decision-table.toml")
            .unwrap()
            .contains(UUID)
    );
}

/// `/status`'s `cooldown_until`, on the shipped rules: the longest cooldown among the rules
/// that could change the instance from its plan now (the rules `decide` would weigh).
#[test]
fn cooldown_until_is_the_longest_cooldown_of_the_rules_that_could_act() {
    let rules = RuleSet::load(std::path::Path::new("rules.toml")).unwrap();
    let finished: Timestamp = "2026-11-26T17:00:00Z".parse().unwrap();
    let at = |minutes: i64| finished + jiff::SignedDuration::from_mins(minutes);
    let names = InstanceNames {
        id: Some("359559"),
        uuid: None,
        name: Some("prod"),
    };
    let until = |plan: &str, now| cooling_down_until(&rules, plan, &names, finished, now);
    // From hare-1, memory-critical (1 h) could act, not only memory-high (30 min): 40
    // minutes after the change the instance is still cooling down for it.
    assert_eq!(until("hare-1", at(40)), Some(at(60)));
    assert_eq!(until("hare-1", at(59)), Some(at(60)));
    assert_eq!(
        until("hare-1", at(60)),
        None,
        "over at exactly finished + cooldown"
    );
    // On ape-1 every memory rule is capped and cpu-high stops at panda-1: nothing could
    // change it, so nothing is cooling down.
    assert_eq!(until("ape-1", at(1)), None);
    // On panda-1, cpu-high is at its cap, but the memory rules still climb to ape-1.
    assert_eq!(until("panda-1", at(1)), Some(at(60)));
    // Not on any ladder.
    assert_eq!(until("lemur", at(1)), None);
    // The same decision `decide` makes 40 minutes after: a 97 % memory alarm is held back.
    let alarm =
        alarm::parse(br#"{"alarm_type":"memory","value":97,"instance_id":359559}"#).unwrap();
    let view = InstanceView {
        plan: "hare-1",
        last_change_finished: Some(finished),
        disk: 0,
        last_disk_change_finished: None,
        names,
    };
    let Decision::Skip(skip) = decide(&rules, &alarm, &view, at(40), None) else {
        panic!("not held back")
    };
    assert_eq!(skip.reason, Reason::Cooldown);
}

/// `disk_sizes` rules: one size up from the extra disk now, `top_of_ladder` at the largest,
/// their own cooldown (from the last disk change, not the last plan change), and beside a
/// plan rule of the same type the rule listed first wins (a size and a plan cannot be
/// compared).
#[test]
fn disk_rules_grow_one_size_with_their_own_cooldown() {
    let rules = cloudamqp_autoscaler::rules::parse(
        "disk.toml",
        r#"
[ladders]
single = ["bunny-1", "hare-1"]

[[rules]]
name = "disk-low"
alarm = "disk"
below = 15
disk_sizes = [25, 50, 100]
cooldown = "6h"

[[rules]]
name = "disk-plan"
alarm = "disk"
below = 5
ladder = "single"
"#,
    )
    .unwrap();
    let now: Timestamp = NOW.parse().unwrap();
    let hours_ago = |h: i64| Some(now - jiff::SignedDuration::from_hours(h));
    let decide_on = |value: f64, disk: u32, last_plan, last_disk| {
        let alarm = alarm::parse(
            format!(r#"{{"alarm_type":"disk","value":{value},"instance_id":7}}"#).as_bytes(),
        )
        .unwrap();
        let view = InstanceView {
            names: InstanceNames {
                id: Some("7"),
                uuid: None,
                name: None,
            },
            plan: "bunny-1",
            last_change_finished: last_plan,
            disk,
            last_disk_change_finished: last_disk,
        };
        decide(&rules, &alarm, &view, now, None)
    };
    let change = |decision: Decision| match decision {
        Decision::Change(c) => (c.kind.as_str(), c.from, c.to, c.rule),
        Decision::Skip(skip) => panic!("a skip: {skip:?}"),
    };
    let reason = |decision: Decision| match decision {
        Decision::Skip(skip) => (skip.reason, skip.detail),
        Decision::Change(c) => panic!("a change: {c:?}"),
    };
    assert_eq!(
        change(decide_on(10.0, 0, None, None)),
        ("disk", "0".into(), "25".into(), "disk-low".into())
    );
    assert_eq!(change(decide_on(10.0, 25, None, None)).2, "50");
    // Below both thresholds: the disk rule is listed first.
    assert_eq!(change(decide_on(1.0, 25, None, None)).0, "disk");
    // A plan change an hour ago does not hold the disk rule; a disk change does, for 6 h.
    assert_eq!(change(decide_on(10.0, 25, hours_ago(1), None)).2, "50");
    let (why, detail) = reason(decide_on(10.0, 25, None, hours_ago(1)));
    assert_eq!(why, Reason::Cooldown);
    assert!(detail.contains("extra disk 25 -> 50 GB"), "{detail}");
    assert_eq!(change(decide_on(10.0, 25, None, hours_ago(6))).2, "50");
    // At the largest size: top_of_ladder, and the plan rule still acts below its threshold.
    let (why, detail) = reason(decide_on(10.0, 100, None, None));
    assert_eq!(why, Reason::TopOfLadder);
    assert!(detail.contains("100 GB"), "{detail}");
    assert_eq!(
        change(decide_on(1.0, 100, None, None)),
        (
            "plan",
            "bunny-1".into(),
            "hare-1".into(),
            "disk-plan".into()
        )
    );
    assert_eq!(
        reason(decide_on(20.0, 0, None, None)).0,
        Reason::BelowThreshold
    );
    // Each kind meets its own cooldown: the disk rule (listed first) cooling down lets the
    // plan rule act, and the plan rule cooling down does not hold the disk rule.
    assert_eq!(
        change(decide_on(1.0, 25, None, hours_ago(1))).3,
        "disk-plan",
        "the disk cooldown does not hold a plan change"
    );
    assert_eq!(
        change(decide_on(1.0, 25, Some(now), None)).3,
        "disk-low",
        "the plan cooldown does not hold a disk change"
    );
    let (why, detail) = reason(decide_on(1.0, 25, Some(now), hours_ago(1)));
    assert_eq!(why, Reason::Cooldown);
    assert!(
        detail.contains("disk-low"),
        "the first-listed rule's cooldown: {detail}"
    );
}
