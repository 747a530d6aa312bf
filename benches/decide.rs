//! `decide` with 10, 1 000 and 10 000 rules over long ladders: the cost must stay flat.
//!
//! Run: `cargo bench --bench decide`. Figures are recorded in BENCHMARKS.md.

use std::hint::black_box;

use cloudamqp_autoscaler::alarm::Alarm;
use cloudamqp_autoscaler::decide::{Decision, InstanceView, decide};
use cloudamqp_autoscaler::rules::{self, InstanceNames, RuleSet};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

const TYPES: &[&str] = rules::ALARM_TYPES;
const LADDERS: usize = 100;
const RUNGS: usize = 50;

/// `count` rules spread over every alarm type and 100 ladders of 50 plans each; a third
/// of the rules select instances by name glob.
fn rule_set(count: usize) -> RuleSet {
    let mut text = String::from("[ladders]\n");
    for l in 0..LADDERS {
        let plans: Vec<String> = (0..RUNGS).map(|r| format!("\"l{l}-p{r}\"")).collect();
        text += &format!("l{l} = [{}]\n", plans.join(", "));
    }
    for i in 0..count {
        text += &format!(
            "[[rules]]\nname = \"rule-{i}\"\nalarm = \"{}\"\nabove = {}\nladder = \"l{}\"\nsteps = {}\n",
            TYPES[i % TYPES.len()],
            50 + i % 40,
            (i / TYPES.len()) % LADDERS,
            1 + i % 3,
        );
        if i % 3 == 0 {
            text += &format!("instances = [\"prod-{}-*\"]\n", i % 7);
        }
    }
    rules::parse("bench.toml", &text).expect("generated rules are valid")
}

fn alarm(value: f64) -> Alarm {
    Alarm {
        kind: "memory".into(),
        value: Some(value),
        instance: None,
        resolved: false,
        message: None,
        triggered_at: None,
    }
}

fn bench(c: &mut Criterion) {
    let now = jiff::Timestamp::UNIX_EPOCH;
    let names = InstanceNames {
        id: Some("359559"),
        uuid: None,
        name: Some("prod-3-eu"),
    };
    let mut group = c.benchmark_group("decide");
    for count in [10, 1_000, 10_000] {
        let rules = rule_set(count);
        // A plan on ladder 0, which memory rules of the first round climb: a change.
        let change = InstanceView {
            names,
            plan: "l0-p10",
            last_change_finished: None,
            disk: 0,
            last_disk_change_finished: None,
        };
        assert!(matches!(
            decide(&rules, &alarm(99.0), &change, now, None),
            Decision::Change(_)
        ));
        group.bench_with_input(BenchmarkId::new("change", count), &rules, |b, rules| {
            b.iter(|| {
                decide(
                    black_box(rules),
                    black_box(&alarm(99.0)),
                    black_box(&change),
                    now,
                    None,
                )
            })
        });
        // A plan on no ladder: every memory rule must be asked how far it gets.
        let off = InstanceView {
            names,
            plan: "lemur",
            last_change_finished: None,
            disk: 0,
            last_disk_change_finished: None,
        };
        group.bench_with_input(
            BenchmarkId::new("skip_not_on_ladder", count),
            &rules,
            |b, rules| {
                b.iter(|| {
                    decide(
                        black_box(rules),
                        black_box(&alarm(99.0)),
                        black_box(&off),
                        now,
                        None,
                    )
                })
            },
        );
        // Below every threshold on a plan no rule knows: the worst case, a full scan of the type.
        group.bench_with_input(
            BenchmarkId::new("skip_below_all_thresholds", count),
            &rules,
            |b, rules| {
                b.iter(|| {
                    decide(
                        black_box(rules),
                        black_box(&alarm(1.0)),
                        black_box(&off),
                        now,
                        None,
                    )
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
