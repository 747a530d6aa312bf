use std::time::Duration;

use jiff::Timestamp;

use super::*;
use crate::decide::Directions;
use crate::rules::{Freeze, FreezeWhen, MaxChanges, Selector};

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn rules() -> RuleSet {
    crate::rules::parse(
        "rules.toml",
        r#"
[ladders]
single = ["bunny-1", "hare-1", "panda-1"]

[[rules]]
name = "memory-high"
alarm = "memory"
above = 80
ladder = "single"
"#,
    )
    .unwrap()
}

fn up<'a>() -> Proposed<'a> {
    Proposed {
        instance_id: 7,
        names: InstanceNames {
            id: Some("7"),
            uuid: None,
            name: Some("prod-eu"),
        },
        direction: Direction::Up,
        kind: crate::decide::ChangeKind::Plan,
        from: "bunny-1",
        to: "hare-1",
    }
}

struct Prices;
impl PlanPrices for Prices {
    fn price(&self, plan: &str) -> Option<f64> {
        match plan {
            "bunny-1" => Some(99.0),
            "hare-1" => Some(199.0),
            "panda-1" => Some(499.0),
            _ => None,
        }
    }
}

fn pause(until: &str, directions: Directions, instances: &[&str]) -> Pause {
    Pause {
        id: "p-1".into(),
        until: at(until),
        directions,
        instances: instances.iter().map(|s| (*s).to_owned()).collect(),
        selectors: instances.iter().map(|s| Selector::new(s)).collect(),
        reason: Some("incident 42".into()),
        created_at: at("2026-12-04T09:00:00Z"),
    }
}

#[test]
fn nothing_holds_without_guardrails() {
    let now = at("2026-12-04T10:00:00Z");
    assert_eq!(hold(&rules(), &up(), &GuardFigures::NONE, now), None);
}

#[test]
fn a_pause_holds_its_direction_and_instances_until_it_ends() {
    let rules = rules();
    let now = at("2026-12-04T10:00:00Z");
    let pauses = [pause("2026-12-04T12:00:00Z", Directions::BOTH, &["prod-*"])];
    let figures = GuardFigures {
        pauses: &pauses,
        ..GuardFigures::NONE
    };
    let held = hold(&rules, &up(), &figures, now).unwrap();
    assert_eq!(held.guardrail, Guardrail::Paused);
    assert!(
        held.detail.contains("until 2026-12-04T12:00:00Z"),
        "{}",
        held.detail
    );
    assert!(held.detail.contains("incident 42"), "{}", held.detail);
    assert_eq!(
        hold(&rules, &up(), &figures, at("2026-12-04T12:00:00Z")),
        None
    );
    let other = [pause(
        "2026-12-04T12:00:00Z",
        Directions::BOTH,
        &["staging-*"],
    )];
    let down_only = [pause(
        "2026-12-04T12:00:00Z",
        Directions::from_name("down").unwrap(),
        &[],
    )];
    for pauses in [&other[..], &down_only[..]] {
        let figures = GuardFigures {
            pauses,
            ..GuardFigures::NONE
        };
        assert_eq!(hold(&rules, &up(), &figures, now), None);
    }
}

#[test]
fn a_freeze_holds_inside_its_window_only() {
    let mut rules = rules();
    rules.freezes = vec![Freeze {
        when: FreezeWhen::Between {
            from: at("2026-12-24T00:00:00+01:00"),
            to: at("2026-12-27T00:00:00+01:00"),
        },
        directions: Directions::BOTH,
    }];
    let inside = at("2026-12-25T12:00:00+01:00");
    let held = hold(&rules, &up(), &GuardFigures::NONE, inside).unwrap();
    assert_eq!(held.guardrail, Guardrail::Frozen);
    assert!(
        held.detail.contains("until 2026-12-26T23:00:00Z"),
        "{}",
        held.detail
    );
    let after = at("2026-12-27T00:00:00+01:00");
    assert_eq!(hold(&rules, &up(), &GuardFigures::NONE, after), None);
}

#[test]
fn max_changes_counts_a_rolling_window() {
    let mut rules = rules();
    rules.limits.max_changes = Some(MaxChanges {
        count: 2,
        per: Duration::from_secs(24 * 3600),
    });
    let starts = [at("2026-12-03T11:00:00Z"), at("2026-12-04T08:00:00Z")];
    let figures = GuardFigures {
        change_starts: &starts,
        ..GuardFigures::NONE
    };
    let held = hold(&rules, &up(), &figures, at("2026-12-04T10:00:00Z")).unwrap();
    assert_eq!(held.guardrail, Guardrail::MaxChanges);
    assert!(
        held.detail.contains("may start at 2026-12-04T11:00:00Z"),
        "{}",
        held.detail
    );
    assert_eq!(
        hold(&rules, &up(), &figures, at("2026-12-04T11:00:00Z")),
        None
    );
}

#[test]
fn the_budget_sums_every_managed_instance_after_the_change() {
    let mut rules = rules();
    rules.limits.max_monthly_price = Some(400.0);
    let now = at("2026-12-04T10:00:00Z");
    let managed = [(7, "bunny-1"), (8, "hare-1")];
    let figures = GuardFigures {
        budget: BudgetView::Known {
            prices: &Prices,
            managed: &managed,
        },
        ..GuardFigures::NONE
    };
    // 199 + 199 = 398: allowed.
    assert_eq!(hold(&rules, &up(), &figures, now), None);
    rules.limits.max_monthly_price = Some(397.0);
    let held = hold(&rules, &up(), &figures, now).unwrap();
    assert_eq!(held.guardrail, Guardrail::Budget);
    assert!(held.detail.contains("$398/month"), "{}", held.detail);
    assert!(
        held.detail.contains("max_monthly_price $397"),
        "{}",
        held.detail
    );
    // Never refuses a change down.
    let down = Proposed {
        direction: Direction::Down,
        from: "hare-1",
        to: "bunny-1",
        ..up()
    };
    assert_eq!(hold(&rules, &down, &figures, now), None);
}

#[test]
fn the_budget_refuses_without_a_catalogue() {
    let mut rules = rules();
    rules.limits.max_monthly_price = Some(3000.0);
    let figures = GuardFigures {
        budget: BudgetView::Unknown("a catalogue of plan prices (CloudAMQP did not answer)"),
        ..GuardFigures::NONE
    };
    let held = hold(&rules, &up(), &figures, at("2026-12-04T10:00:00Z")).unwrap();
    assert_eq!(held.guardrail, Guardrail::Budget);
    assert!(held.detail.contains("cannot be checked"), "{}", held.detail);
}
