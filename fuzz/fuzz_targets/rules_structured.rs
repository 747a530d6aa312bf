//! Structurally valid rules files, generated with `arbitrary` and rendered to TOML: they
//! must always load (in any rule order), and then decide like the byte-level `rules`
//! target checks, with the generated alarm on the generated plan on top of the fixed ones.
#![no_main]

use arbitrary::Arbitrary;
use cloudamqp_autoscaler::alarm::Alarm;
use cloudamqp_autoscaler::rules::{self, ALARM_TYPES, InstanceNames};
use cloudamqp_autoscaler_fuzz::{FILE, check_decision, check_decisions, check_rules};
use jiff::{SignedDuration, Timestamp};
use libfuzzer_sys::fuzz_target;

const PLANS: &[&str] = &[
    "bunny-1",
    "hare-1",
    "rabbit-1",
    "panda-1",
    "ape-1",
    "hippo-1",
    "lion-1",
    "rhino-1",
    "bunny-3",
    "hare-3",
    "xlarge",
    "p\u{e9}-1",
];
const DURATIONS: &[&str] = &[
    "0s", "1s", "90s", "10m", "30m", "1h 30m", "PT15S", "24h", "100000h",
];
const SELECTORS: &[&str] = &[
    "*",
    "359559",
    "prod-*",
    "4e683759-5eb9-41b3-8794-26f751de5699",
    "4E683759-5EB9-41B3-8794-26F751DE5699",
    "staging",
    "3595?9",
    "?",
];

#[derive(Arbitrary, Debug)]
struct Input {
    default_cooldown: Option<u8>,
    ladders: Vec<Vec<u8>>,
    rules: Vec<RuleSpec>,
    alarm_type: u8,
    value: Option<f64>,
    resolved: bool,
    plan: u8,
    instance: u8,
    minutes_since_change: Option<i16>,
}

#[derive(Arbitrary, Debug)]
struct RuleSpec {
    alarm: u8,
    threshold: Option<(bool, Threshold)>,
    action: ActionSpec,
    cooldown: Option<u8>,
    instances: Option<Vec<Instance>>,
}

#[derive(Arbitrary, Debug)]
enum Threshold {
    Int(i32),
    Float(f64),
}

#[derive(Arbitrary, Debug)]
enum Instance {
    Text(u8),
    Id(u32),
}

#[derive(Arbitrary, Debug)]
enum ActionSpec {
    Ladder {
        ladder: u8,
        steps: Option<u8>,
        max_plan: Option<u8>,
    },
    Targets(Vec<(u8, u8)>),
}

fn pick<T: Copy>(pool: &[T], i: u8) -> T {
    pool[usize::from(i) % pool.len()]
}

/// Whether adding `from -> to` to `map` keeps it free of loops.
fn acyclic_with(map: &[(&str, &str)], from: &str, to: &str) -> bool {
    let mut at = to;
    for _ in 0..=map.len() {
        if at == from {
            return false;
        }
        match map.iter().find(|(f, _)| *f == at) {
            Some((_, next)) => at = next,
            None => return true,
        }
    }
    false
}

/// The ladders, deduplicated and never empty.
fn ladders(input: &Input) -> Vec<Vec<&'static str>> {
    input
        .ladders
        .iter()
        .take(4)
        .map(|picks| {
            let mut plans: Vec<&str> = Vec::new();
            for &i in picks.iter().take(10) {
                let plan = pick(PLANS, i);
                if !plans.contains(&plan) {
                    plans.push(plan);
                }
            }
            if plans.is_empty() {
                plans.push(PLANS[0]);
            }
            plans
        })
        .collect()
}

fn quoted(items: &[&str]) -> String {
    items
        .iter()
        .map(|p| format!("{p:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The file, one `[[rules]]` text per rule (so they can be reordered).
fn render(input: &Input, ladders: &[Vec<&str>]) -> (String, Vec<String>) {
    let mut head = String::new();
    if let Some(i) = input.default_cooldown {
        head += &format!("[defaults]\ncooldown = {:?}\n\n", pick(DURATIONS, i));
    }
    if !ladders.is_empty() {
        head += "[ladders]\n";
        for (n, plans) in ladders.iter().enumerate() {
            head += &format!("l{n} = [{}]\n", quoted(plans));
        }
    }
    let mut rules = Vec::new();
    for (n, spec) in input.rules.iter().take(8).enumerate() {
        let mut text = format!(
            "\n[[rules]]\nname = \"r{n}\"\nalarm = {:?}\n",
            pick(ALARM_TYPES, spec.alarm)
        );
        if let Some((above, threshold)) = &spec.threshold {
            let key = if *above { "above" } else { "below" };
            match threshold {
                Threshold::Int(v) => text += &format!("{key} = {v}\n"),
                Threshold::Float(v) if v.is_finite() => text += &format!("{key} = {v:?}\n"),
                Threshold::Float(_) => text += &format!("{key} = 80.5\n"),
            }
        }
        if let Some(i) = spec.cooldown {
            text += &format!("cooldown = {:?}\n", pick(DURATIONS, i));
        }
        if let Some(instances) = &spec.instances {
            let mut items: Vec<String> = instances
                .iter()
                .take(4)
                .map(|instance| match instance {
                    Instance::Text(i) => format!("{:?}", pick(SELECTORS, *i)),
                    Instance::Id(id) => id.to_string(),
                })
                .collect();
            if items.is_empty() {
                items.push("\"*\"".to_owned());
            }
            text += &format!("instances = [{}]\n", items.join(", "));
        }
        match &spec.action {
            ActionSpec::Ladder {
                ladder,
                steps,
                max_plan,
            } if !ladders.is_empty() => {
                let index = usize::from(*ladder) % ladders.len();
                text += &format!("ladder = \"l{index}\"\n");
                if let Some(steps) = steps {
                    text += &format!("steps = {}\n", steps % 5 + 1);
                }
                if let Some(i) = max_plan {
                    text += &format!("max_plan = {:?}\n", pick(&ladders[index], *i));
                }
            }
            action => {
                let pairs: &[(u8, u8)] = match action {
                    ActionSpec::Targets(pairs) => pairs,
                    ActionSpec::Ladder { .. } => &[],
                };
                let mut map: Vec<(&str, &str)> = Vec::new();
                for &(from, to) in pairs.iter().take(6) {
                    let (from, to) = (pick(PLANS, from), pick(PLANS, to));
                    if from != to
                        && !map.iter().any(|(f, _)| *f == from)
                        && acyclic_with(&map, from, to)
                    {
                        map.push((from, to));
                    }
                }
                if map.is_empty() {
                    map.push((PLANS[0], PLANS[1]));
                }
                text += "[rules.targets]\n";
                for (from, to) in map {
                    text += &format!("{from:?} = {to:?}\n");
                }
            }
        }
        rules.push(text);
    }
    (head, rules)
}

fuzz_target!(|input: Input| {
    let ladders = ladders(&input);
    let (head, rules) = render(&input, &ladders);
    let text = head.clone() + &rules.concat();
    let set = match rules::parse(FILE, &text) {
        Ok(set) => set,
        Err(e) => panic!("a valid file was refused:\n{text}\n{e}"),
    };
    assert_eq!(set.rules().len(), rules.len());
    // Rule order changes which rule wins a tie, never whether the file is valid.
    let reversed = head + &rules.iter().rev().cloned().collect::<String>();
    if let Err(e) = rules::parse(FILE, &reversed) {
        panic!("the file with its rules reversed was refused:\n{reversed}\n{e}");
    }
    check_rules(&text);
    check_decisions(&set);

    let now: Timestamp = "2026-11-26T17:00:00Z".parse().expect("a timestamp");
    let names = [
        InstanceNames::default(),
        InstanceNames {
            id: Some("359559"),
            uuid: Some("4e683759-5eb9-41b3-8794-26f751de5699"),
            name: Some("prod-eu"),
        },
        InstanceNames {
            id: Some("42"),
            uuid: None,
            name: Some("staging"),
        },
    ];
    let alarm = Alarm {
        kind: pick(ALARM_TYPES, input.alarm_type).to_owned(),
        value: input.value.filter(|v| v.is_finite()),
        instance: None,
        resolved: input.resolved,
        message: None,
        triggered_at: None,
    };
    let finished =
        now - SignedDuration::from_mins(i64::from(input.minutes_since_change.unwrap_or(0)));
    check_decision(
        &set,
        &alarm,
        pick(&names, input.instance),
        pick(PLANS, input.plan),
        now,
        finished,
        None,
    );
});
