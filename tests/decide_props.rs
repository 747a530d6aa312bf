//! Properties of ladder decisions, over generated rule files and alarms.

use cloudamqp_autoscaler::alarm::Alarm;
use cloudamqp_autoscaler::decide::{Decision, InstanceView, decide};
use cloudamqp_autoscaler::rules::{self, InstanceNames, RuleSet};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct GenRule {
    above: Option<u8>,
    steps: usize,
    /// Rung of max_plan, when set.
    max_rung: Option<usize>,
}

fn ladder(len: usize) -> Vec<String> {
    (0..len).map(|i| format!("plan-{i}")).collect()
}

fn rules_text(len: usize, rules: &[GenRule]) -> String {
    let plans = ladder(len);
    let mut text = format!(
        "[ladders]\nup = [{}]\n",
        plans
            .iter()
            .map(|p| format!("{p:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (i, rule) in rules.iter().enumerate() {
        text += &format!(
            "[[rules]]\nname = \"r{i}\"\nalarm = \"memory\"\nladder = \"up\"\nsteps = {}\n",
            rule.steps
        );
        if let Some(above) = rule.above {
            text += &format!("above = {above}\n");
        }
        if let Some(rung) = rule.max_rung {
            text += &format!("max_plan = \"plan-{}\"\n", rung.min(len - 1));
        }
    }
    text
}

fn scenario() -> impl Strategy<Value = (usize, Vec<GenRule>, usize, Option<u8>)> {
    (2usize..40).prop_flat_map(|len| {
        let rule = (
            proptest::option::of(0u8..100),
            1usize..6,
            proptest::option::of(0..len),
        )
            .prop_map(|(above, steps, max_rung)| GenRule {
                above,
                steps,
                max_rung,
            });
        (
            Just(len),
            proptest::collection::vec(rule, 1..12),
            0..len + 2, // the current plan; past the ladder means "not on it"
            proptest::option::of(0u8..=100),
        )
    })
}

/// A scenario and a permutation of its rules.
fn shuffled_scenario() -> impl Strategy<Value = (usize, Vec<GenRule>, usize, Option<u8>, Vec<usize>)>
{
    scenario().prop_flat_map(|(len, spec, current, value)| {
        let order = Just((0..spec.len()).collect::<Vec<_>>()).prop_shuffle();
        (Just(len), Just(spec), Just(current), Just(value), order)
    })
}

fn decide_on(rules: &RuleSet, plan: &str, value: Option<u8>) -> Decision {
    let alarm = Alarm {
        kind: "memory".into(),
        value: value.map(f64::from),
        instance: None,
        resolved: false,
        message: None,
        triggered_at: None,
    };
    let view = InstanceView {
        names: InstanceNames::default(),
        plan,
        last_change_finished: None,
        disk: 0,
        last_disk_change_finished: None,
    };
    decide(rules, &alarm, &view, jiff::Timestamp::UNIX_EPOCH, None)
}

fn rung(plan: &str) -> usize {
    plan.trim_start_matches("plan-").parse().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_ladder_decision_climbs_within_its_caps((len, spec, current, value) in scenario()) {
        let rules = rules::parse("gen.toml", &rules_text(len, &spec)).unwrap();
        let plan = format!("plan-{current}");
        if let Decision::Change(change) = decide_on(&rules, &plan, value) {
            prop_assert!(current < len, "a plan off the ladder moved");
            let to = rung(&change.to);
            prop_assert!(to > current, "moved down or stayed: {plan} -> {}", change.to);
            prop_assert_ne!(&change.to, &plan);
            prop_assert!(to < len, "past the top");
            let rule = &spec[change.rule.trim_start_matches('r').parse::<usize>().unwrap()];
            let cap = rule.max_rung.map_or(len - 1, |r| r.min(len - 1));
            prop_assert!(to <= cap, "past max_plan: {to} > {cap}");
            prop_assert!(to <= current + rule.steps, "more rungs than steps");
        }
    }

    #[test]
    fn rule_order_only_matters_for_ties((len, spec, current, value, order) in shuffled_scenario()) {
        let text = rules_text(len, &spec);
        let rules = rules::parse("gen.toml", &text).unwrap();
        // The same rules in another order (names travel with their rules).
        let mut parts = text.split("[[rules]]");
        let header = parts.next().unwrap();
        let blocks: Vec<&str> = parts.collect();
        let reordered: Vec<&str> = order.iter().map(|&i| blocks[i]).collect();
        let shuffled = format!("{header}[[rules]]{}", reordered.join("[[rules]]"));
        let shuffled = rules::parse("gen.toml", &shuffled).unwrap();
        let plan = format!("plan-{current}");
        match (decide_on(&rules, &plan, value), decide_on(&shuffled, &plan, value)) {
            (Decision::Change(a), Decision::Change(b)) => prop_assert_eq!(a.to, b.to),
            (Decision::Skip(a), Decision::Skip(b)) => prop_assert_eq!(a.reason, b.reason),
            (a, b) => prop_assert!(false, "{a:?} vs {b:?}"),
        }
    }
}
