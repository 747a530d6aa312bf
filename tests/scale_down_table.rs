//! The pure step-down decision, as a table: one row per reason code (and the change), each
//! with the one input that makes it. The daemon and `explain --down` run this code.

use cloudamqp_autoscaler::cloudamqp::BrokerNode;
use cloudamqp_autoscaler::rules::{self, InstanceNames, RuleSet};
use cloudamqp_autoscaler::scale_down::{
    DownDecision, DownReason, DownView, Figures, Streak, UpStep, decide_down,
};
use jiff::Timestamp;

const RULES: &str = r#"
[ladders]
single = ["bunny-1", "hare-1", "rabbit-1", "panda-1"]
other = ["lemur", "tiger"]

[[rules]]
name = "memory-high"
alarm = "memory"
above = 80
ladder = "single"

[[rules]]
name = "disk-jump"
alarm = "disk"
[rules.targets]
"bunny-1" = "rabbit-1"

[scale_down]
instances = ["prod-*"]
quiet_for = "2h"
after_up = "6h"
after_down = "24h"
check_every = "5m"
window = "1h"
memory_headroom = 60
memory_limits = { "hare-1" = "3GiB" }
hours = { days = ["sat", "sun"], from = "02:00", to = "05:00", timezone = "Europe/Stockholm" }
"#;

/// Saturday 2026-12-05 03:00 in Stockholm: inside the hours.
const NOW: &str = "2026-12-05T02:00:00Z";
const GIB: u64 = 1 << 30;

fn rules() -> RuleSet {
    rules::parse("rules.toml", RULES).unwrap()
}

fn t(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn node(used: u64) -> BrokerNode {
    BrokerNode {
        name: "rabbit@prod-01".into(),
        running: true,
        mem_used: used,
        mem_limit: 3 * GIB,
        mem_alarm: false,
        disk_free_alarm: false,
    }
}

/// One row: what changes from the passing base case.
struct Row {
    name: &'static str,
    plan: &'static str,
    baseline: Option<&'static str>,
    instance: &'static str,
    last_alarm: Option<&'static str>,
    last_up: Option<&'static str>,
    last_down: Option<&'static str>,
    ups: Vec<UpStep>,
    now: &'static str,
    ready: bool,
    nodes: Result<Vec<BrokerNode>, &'static str>,
    seen_limit: Option<u64>,
    streak: Option<Streak>,
    expect: Result<&'static str, DownReason>,
}

fn base(name: &'static str) -> Row {
    Row {
        name,
        plan: "rabbit-1",
        baseline: Some("bunny-1"),
        instance: "prod-eu",
        last_alarm: Some("2026-12-04T20:00:00Z"),
        last_up: Some("2026-12-04T19:00:00Z"),
        last_down: None,
        ups: vec![UpStep {
            from: "bunny-1".into(),
            to: "rabbit-1".into(),
            rule: "memory-high".into(),
        }],
        now: NOW,
        ready: true,
        nodes: Ok(vec![node(GIB)]),
        seen_limit: Some(4 * GIB),
        streak: None,
        expect: Ok("hare-1"),
    }
}

fn decide(rules: &RuleSet, row: &Row) -> DownDecision {
    let now = t(row.now);
    let view = DownView {
        names: InstanceNames {
            id: Some("359559"),
            uuid: None,
            name: Some(row.instance),
        },
        plan: row.plan,
        baseline: row.baseline,
        last_alarm: row.last_alarm.map(t),
        last_up: row.last_up.map(t),
        last_down: row.last_down.map(t),
        ups: &row.ups,
    };
    let figures = Figures {
        ready: row.ready,
        nodes: row.nodes.as_deref().map_err(|why| *why),
        seen_limit: row.seen_limit,
    };
    let window = rules.scale_down().unwrap().window;
    let streak = row
        .streak
        .unwrap_or_else(|| Streak::whole_window(now, window));
    decide_down(
        rules,
        &view,
        &cloudamqp_autoscaler::guard::GuardFigures::NONE,
        &figures,
        streak,
        now,
    )
}

#[test]
fn every_reason_code_and_the_change() {
    let rules = rules();
    let rows = vec![
        base("the evidence holds for the window: one rung down the rule's ladder"),
        Row {
            plan: "hare-1",
            expect: Err(DownReason::AtFloor),
            baseline: Some("hare-1"),
            ..base("at the floor")
        },
        Row {
            plan: "bunny-1",
            baseline: Some("hare-1"),
            expect: Err(DownReason::AtFloor),
            ..base("below the floor on the ladder")
        },
        Row {
            baseline: None,
            expect: Err(DownReason::AtFloor),
            ..base("no baseline: nothing is the daemon's")
        },
        Row {
            instance: "staging",
            expect: Err(DownReason::InstanceNotSelected),
            ..base("not selected")
        },
        Row {
            plan: "tiger",
            ups: vec![],
            expect: Err(DownReason::NotOnLadder),
            ..base("no ladder holds the plan and the floor")
        },
        Row {
            last_alarm: Some("2026-12-05T00:30:00Z"),
            expect: Err(DownReason::NotQuiet),
            ..base("an alarm 90 minutes ago")
        },
        Row {
            last_up: Some("2026-12-04T21:00:00Z"),
            expect: Err(DownReason::TooSoon),
            ..base("the last up 5 hours ago")
        },
        Row {
            last_down: Some("2026-12-04T03:00:00Z"),
            expect: Err(DownReason::TooSoon),
            ..base("the last down 23 hours ago")
        },
        Row {
            now: "2026-12-04T02:00:00Z",
            last_alarm: Some("2026-12-03T20:00:00Z"),
            last_up: Some("2026-12-03T19:00:00Z"),
            expect: Err(DownReason::OutsideHours),
            ..base("a Friday")
        },
        Row {
            ready: false,
            expect: Err(DownReason::NotReady),
            ..base("the instance is not ready")
        },
        Row {
            nodes: Ok(vec![BrokerNode {
                running: false,
                ..node(0)
            }]),
            expect: Err(DownReason::NotReady),
            ..base("a node is not running")
        },
        Row {
            nodes: Ok(vec![BrokerNode {
                mem_alarm: true,
                ..node(GIB)
            }]),
            expect: Err(DownReason::NodeAlarm),
            ..base("a memory alarm")
        },
        Row {
            nodes: Ok(vec![BrokerNode {
                disk_free_alarm: true,
                ..node(GIB)
            }]),
            expect: Err(DownReason::NodeAlarm),
            ..base("a disk alarm")
        },
        Row {
            nodes: Err("HTTP 401"),
            expect: Err(DownReason::MetricsUnavailable),
            ..base("no metrics")
        },
        Row {
            plan: "panda-1",
            ups: vec![UpStep {
                from: "bunny-1".into(),
                to: "panda-1".into(),
                rule: "memory-high".into(),
            }],
            seen_limit: None,
            expect: Err(DownReason::CapacityUnknown),
            ..base("rabbit-1's limit never seen and not in memory_limits")
        },
        Row {
            plan: "rabbit-1",
            seen_limit: None,
            nodes: Ok(vec![node(GIB)]),
            expect: Ok("hare-1"),
            ..base("hare-1 never seen: memory_limits says 3 GiB")
        },
        Row {
            nodes: Ok(vec![node(3 * GIB)]),
            expect: Err(DownReason::Headroom),
            ..base("3 GiB is 75 % of hare-1's 4 GiB")
        },
        Row {
            streak: Some(Streak::default()),
            expect: Err(DownReason::Stabilizing),
            ..base("the first passing look")
        },
        Row {
            plan: "rabbit-1",
            ups: vec![UpStep {
                from: "bunny-1".into(),
                to: "rabbit-1".into(),
                rule: "disk-jump".into(),
            }],
            seen_limit: Some(4 * GIB),
            expect: Ok("bunny-1"),
            ..base("a targets rule goes back to its change's from")
        },
    ];
    let mut seen = std::collections::HashSet::new();
    for row in rows {
        let decision = decide(&rules, &row);
        match (&decision, row.expect) {
            (DownDecision::Change { change, .. }, Ok(to)) => {
                assert_eq!(change.to, to, "{}", row.name);
                assert_eq!(change.rule, "scale_down", "{}", row.name);
                assert_eq!(change.direction.as_str(), "down");
                assert_eq!(change.cooldown, std::time::Duration::from_secs(86_400));
            }
            (DownDecision::Skip(verdict), Err(reason)) => {
                assert_eq!(verdict.reason, reason, "{}: {}", row.name, verdict.detail);
                assert!(!verdict.detail.is_empty());
                seen.insert(reason);
            }
            (other, expect) => panic!("{}: {other:?}, expected {expect:?}", row.name),
        }
    }
    // Every code the pure decision gives has a row (move_not_allowed needs the catalogue:
    // the daemon's, tested black-box; the guardrails' codes need a freeze or run-time
    // figures: tests/cli_explain_guard.rs, the guard module's tests and tests/daemon).
    let elsewhere = [
        DownReason::MoveNotAllowed,
        DownReason::Paused,
        DownReason::Frozen,
        DownReason::MaxChanges,
    ];
    for reason in DownReason::ALL {
        if !elsewhere.contains(reason) {
            assert!(seen.contains(reason), "no row for {reason}");
        }
    }
}

#[test]
fn a_stabilizing_look_still_counts_as_passed_with_its_projection() {
    let rules = rules();
    let row = Row {
        streak: Some(Streak::default()),
        ..base("first look")
    };
    let DownDecision::Skip(verdict) = decide(&rules, &row) else {
        panic!("a first look does not step down")
    };
    assert!(verdict.passed);
    assert_eq!(verdict.projected_memory_percent, Some(25.0));
    assert!(verdict.detail.contains("25.0 %"), "{}", verdict.detail);
}

/// The projection spreads the total over the smaller plan's nodes when that is more than the
/// busiest node: three nodes of 1 GiB onto one node of 4 GiB is 75 %.
#[test]
fn three_nodes_onto_one_project_their_total() {
    let text = RULES.replace(
        "single = [\"bunny-1\", \"hare-1\", \"rabbit-1\", \"panda-1\"]",
        "single = [\"bunny-1\", \"hare-1\", \"rabbit-1\", \"panda-1\"]\nthree = [\"hare-1\", \"hare-3\"]",
    );
    let rules = rules::parse("rules.toml", &text).unwrap();
    let row = Row {
        plan: "hare-3",
        baseline: Some("hare-1"),
        ups: vec![],
        nodes: Ok(vec![node(GIB), node(GIB), node(GIB)]),
        ..base("hare-3 -> hare-1")
    };
    match decide(&rules, &row) {
        DownDecision::Skip(verdict) => {
            assert_eq!(verdict.reason, DownReason::Headroom, "{}", verdict.detail);
            assert_eq!(verdict.projected_memory_percent, Some(75.0));
        }
        other => panic!("{other:?}"),
    }
}
