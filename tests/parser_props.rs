//! Properties of the two parsers that take untrusted or hand-written input: the webhook
//! body parser (`alarm::parse`) and the rules file loader (`rules::parse`).
//!
//! The CI-sized companion of the coverage-guided fuzz targets in `fuzz/` (see
//! RELIABILITY.md, "Fuzzing"): the same promises, over generated inputs, in well under a
//! second per property.

use std::collections::BTreeMap;

use cloudamqp_autoscaler::alarm::{self, Alarm, AlarmError};
use cloudamqp_autoscaler::instance::{InstanceRef, MAX_INSTANCE_ID};
use cloudamqp_autoscaler::redact::redact_json;
use cloudamqp_autoscaler::rules::{self, ALARM_TYPES, Location, RulesFailure};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Map, Value};

/// The fields the alarm parser reads; anything else is an unknown field.
const ALARM_FIELDS: &[&str] = &[
    "alarm_type",
    "type",
    "value",
    "instance_id",
    "instance",
    "resolved",
    "metadata",
    "message",
    "triggered_at",
];

// ---------------------------------------------------------------------------------------
// Alarm payloads

/// Strings that look like what the alarm parser cares about, and some that do not.
fn json_string() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,12}",
        "[ ]?-?[0-9]{1,6}(\\.[0-9]{1,4})?([eE][+-]?[0-9]{1,3})?[ ]?",
        Just("NaN".to_owned()),
        Just("inf".to_owned()),
        Just("4e683759-5eb9-41b3-8794-26f751de5699".to_owned()),
        Just("amqps://user:pw@host/vhost".to_owned()),
        Just(String::new()),
    ]
}

/// Keys: the ones the parser reads, secret-looking ones the redaction replaces, others.
fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        select(ALARM_FIELDS).prop_map(str::to_owned),
        select(&["url", "apikey", "Token", "password"][..]).prop_map(str::to_owned),
        "[a-z_]{0,6}",
    ]
}

/// Any JSON value, at most four containers deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // `Value::from` turns a non-finite float into null.
        any::<f64>().prop_map(Value::from),
        json_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(json_key(), inner, 0..6)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// An object made mostly of the fields the parser reads, with any values.
fn alarm_like_object() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(json_key(), json_value(), 0..8)
        .prop_map(|fields| Value::Object(fields.into_iter().collect()))
}

/// What every accepted alarm looks like, and its redacted journal copy parses back to it.
fn check_accepted(body: &[u8]) -> Result<(), TestCaseError> {
    let Ok((alarm, json)) = alarm::parse_with_json(body) else {
        return Ok(());
    };
    prop_assert!(!alarm.kind.is_empty());
    prop_assert_eq!(&alarm.kind, &alarm.kind.to_lowercase());
    prop_assert!(alarm.value.is_none_or(f64::is_finite));
    let redacted = redact_json(json);
    prop_assert_eq!(alarm::parse(redacted.as_bytes()), Ok(alarm));
    Ok(())
}

/// A well-formed alarm: the JSON fields to send, and the alarm they must parse to.
#[derive(Debug, Clone)]
struct WellFormed {
    fields: Map<String, Value>,
    expected: Alarm,
    /// The known fields this alarm leaves out (so they can be sent as `null`).
    absent: Vec<&'static str>,
}

fn value_field() -> impl Strategy<Value = Option<(Value, f64)>> {
    let finite = any::<f64>().prop_filter("finite", |v| v.is_finite());
    proptest::option::of(prop_oneof![
        finite.clone().prop_map(|v| (Value::from(v), v)),
        (finite, "[ ]{0,2}").prop_map(|(v, pad)| (Value::String(format!("{pad}{v}{pad}")), v)),
        any::<i32>().prop_map(|v| (Value::String(v.to_string()), f64::from(v))),
        any::<i64>().prop_map(|v| (Value::from(v), v as f64)),
    ])
}

fn instance_field() -> impl Strategy<Value = Option<(Value, InstanceRef)>> {
    proptest::option::of(prop_oneof![
        // Ids the store can hold (`MAX_INSTANCE_ID`); larger ones are refused.
        (0..=MAX_INSTANCE_ID).prop_map(|id| (Value::from(id), InstanceRef::Id(id))),
        (0..=MAX_INSTANCE_ID).prop_map(|id| (Value::String(id.to_string()), InstanceRef::Id(id))),
        (any::<u128>(), any::<bool>()).prop_map(|(bits, upper)| {
            let uuid = uuid::Uuid::from_u128(bits);
            let text = uuid.hyphenated().to_string();
            let text = if upper { text.to_uppercase() } else { text };
            (Value::String(text), InstanceRef::Uuid(uuid))
        }),
    ])
}

fn well_formed() -> impl Strategy<Value = WellFormed> {
    (
        (
            select(&["alarm_type", "type"][..]),
            "[ ]?[A-Za-z_]{1,12}[ ]?",
        ),
        value_field(),
        (select(&["instance_id", "instance"][..]), instance_field()),
        proptest::option::of((any::<bool>(), any::<bool>())),
        proptest::option::of("[^:@]{0,20}"),
    )
        .prop_map(
            |((type_key, kind), value, (instance_key, instance), resolved, message)| {
                let mut fields = Map::new();
                let mut absent = vec![if type_key == "type" {
                    "alarm_type"
                } else {
                    "type"
                }];
                fields.insert(type_key.to_owned(), Value::String(kind.clone()));
                match &value {
                    Some((json, _)) => {
                        fields.insert("value".to_owned(), json.clone());
                    }
                    None => absent.push("value"),
                }
                match &instance {
                    Some((json, _)) => {
                        fields.insert(instance_key.to_owned(), json.clone());
                    }
                    None => absent.extend(["instance_id", "instance"]),
                }
                match resolved {
                    Some((flag, true)) => {
                        fields.insert("resolved".to_owned(), Value::Bool(flag));
                        absent.push("metadata");
                    }
                    Some((flag, false)) => {
                        let metadata = serde_json::json!({ "resolved": flag });
                        fields.insert("metadata".to_owned(), metadata);
                        absent.push("resolved");
                    }
                    None => absent.extend(["resolved", "metadata"]),
                }
                match &message {
                    Some(text) => {
                        fields.insert("message".to_owned(), Value::String(text.clone()));
                    }
                    None => absent.push("message"),
                }
                absent.push("triggered_at");
                WellFormed {
                    fields,
                    expected: Alarm {
                        kind: kind.trim().to_lowercase(),
                        value: value.map(|(_, v)| v),
                        instance: instance.map(|(_, i)| i),
                        resolved: resolved.is_some_and(|(flag, _)| flag),
                        message,
                        triggered_at: None,
                    },
                    absent,
                }
            },
        )
}

fn body(fields: &Map<String, Value>) -> Vec<u8> {
    serde_json::to_vec(fields).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic_the_alarm_parser(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_accepted(&bytes)?;
    }

    #[test]
    fn arbitrary_json_never_panics_the_alarm_parser(value in json_value()) {
        let text = serde_json::to_vec(&value).unwrap();
        if !value.is_object() {
            prop_assert!(matches!(alarm::parse(&text), Err(AlarmError::NotAnObject(_))));
        }
        check_accepted(&text)?;
    }

    #[test]
    fn alarm_shaped_objects_never_panic_the_alarm_parser(value in alarm_like_object()) {
        check_accepted(&serde_json::to_vec(&value).unwrap())?;
    }

    #[test]
    fn a_well_formed_alarm_parses_to_what_it_says(alarm in well_formed()) {
        prop_assert_eq!(alarm::parse(&body(&alarm.fields)), Ok(alarm.expected));
    }

    #[test]
    fn unknown_fields_never_change_the_result(
        alarm in well_formed(),
        extra in prop::collection::btree_map(json_key(), json_value(), 1..6),
    ) {
        let mut fields = alarm.fields.clone();
        for (key, value) in extra {
            if !ALARM_FIELDS.contains(&key.as_str()) {
                fields.insert(key, value);
            }
        }
        prop_assert_eq!(alarm::parse(&body(&fields)), Ok(alarm.expected));
    }

    #[test]
    fn null_fields_count_as_absent(alarm in well_formed(), nested in any::<bool>()) {
        let mut fields = alarm.fields.clone();
        for key in &alarm.absent {
            let null = if *key == "metadata" && nested {
                serde_json::json!({ "resolved": null })
            } else {
                Value::Null
            };
            fields.insert((*key).to_owned(), null);
        }
        prop_assert_eq!(alarm::parse(&body(&fields)), Ok(alarm.expected));
    }
}

// ---------------------------------------------------------------------------------------
// Rules files

const FILE: &str = "props.toml";

/// Every reported position is a line and column that exist in `text` (1-based, columns
/// in characters, at most one past the end of a line).
fn check_location(text: &str, location: &Location) -> Result<(), TestCaseError> {
    prop_assert_eq!(&location.file, FILE);
    prop_assert!(location.line >= 1 && location.column >= 1, "{location:?}");
    prop_assert!(location.line <= text.lines().count() + 1, "{location:?}");
    let line = text.split('\n').nth(location.line - 1);
    prop_assert!(line.is_some(), "{location:?}");
    prop_assert!(
        location.column <= line.unwrap_or_default().chars().count() + 1,
        "{location:?}"
    );
    Ok(())
}

/// `rules::parse` on any text: no panic; a refusal has errors, all inside the text.
fn check_rules_text(text: &str) -> Result<(), TestCaseError> {
    match rules::parse(FILE, text) {
        Ok(set) => {
            for warning in set.warnings() {
                check_location(text, &warning.location)?;
            }
        }
        Err(RulesFailure::Invalid { file, errors }) => {
            prop_assert_eq!(file, FILE);
            prop_assert!(!errors.is_empty(), "refused without an error");
            for error in &errors {
                check_location(text, &error.location)?;
            }
        }
        Err(e @ RulesFailure::Io { .. }) => prop_assert!(false, "I/O error from text: {e}"),
    }
    Ok(())
}

/// Lines a rules file is made of, well-formed or not.
fn rules_line() -> impl Strategy<Value = String> {
    prop_oneof![
        select(
            &[
                "[defaults]",
                "cooldown = \"30m\"",
                "cooldown = \"soon\"",
                "[ladders]",
                "single = [\"bunny-1\", \"hare-1\", \"rabbit-1\"]",
                "single = []",
                "dup = [\"a-1\", \"a-1\"]",
                "[[rules]]",
                "name = \"r\"",
                "alarm = \"memory\"",
                "alarm = \"memroy\"",
                "above = 80",
                "below = 5.5",
                "ladder = \"single\"",
                "ladder = \"nope\"",
                "steps = 0",
                "steps = 2",
                "max_plan = \"hare-1\"",
                "max_plan = \"x\"",
                "instances = [\"*\", 359559, \"prod-*\"]",
                "instances = []",
                "[rules.targets]",
                "\"bunny-1\" = \"hare-1\"",
                "\"hare-1\" = \"bunny-1\"",
                "colour = \"blue\"",
                "name = ",
                "[[rules",
                "\"unterminated",
                "a = { b = 1 }",
                "# é comment ✓",
            ][..]
        )
        .prop_map(str::to_owned),
        "[a-z\\[\\]=\" #é\t-]{0,16}",
    ]
}

fn toml_ish() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(rules_line(), 0..24),
        select(&["\n", "\r\n"][..]),
    )
        .prop_map(|(lines, end)| lines.join(end))
}

/// A defect injected into one rule; each makes the file invalid with exactly one error
/// about that rule, wherever the rule is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Defect {
    UnknownAlarm,
    StepsZero,
    AboveAndBelow,
    UnknownLadder,
    MaxPlanOffLadder,
    UnknownKey,
    BadCooldown,
    EmptyInstances,
}

/// A ladder action (`ladder`, `steps`, the rung of `max_plan`), or a targets map as
/// `(from, to)` plan indices.
type GenAction = Result<(usize, Option<u8>, Option<usize>), Vec<(usize, usize)>>;

#[derive(Debug, Clone)]
struct GenRule {
    alarm: &'static str,
    threshold: Option<(bool, i16)>,
    action: GenAction,
    cooldown: Option<&'static str>,
    instances: Option<Vec<&'static str>>,
    defect: Option<Defect>,
}

const PLANS: &[&str] = &[
    "bunny-1", "hare-1", "rabbit-1", "panda-1", "ape-1", "hippo-1", "lion-1", "rhino-1",
];
const LADDERS: &[&[&str]] = &[
    &["bunny-1", "hare-1", "rabbit-1", "panda-1"],
    &["bunny-3", "hare-3", "rabbit-3"],
    &["rhino-1"],
];

fn gen_rule(defects: bool) -> impl Strategy<Value = GenRule> {
    let action = prop_oneof![
        (
            0..LADDERS.len(),
            proptest::option::of(1u8..5),
            proptest::option::of(0usize..4)
        )
            .prop_map(Ok),
        prop::collection::vec((0..PLANS.len(), 0..PLANS.len()), 1..5).prop_map(Err),
    ];
    let defect = if defects {
        proptest::option::weighted(
            0.3,
            select(
                &[
                    Defect::UnknownAlarm,
                    Defect::StepsZero,
                    Defect::AboveAndBelow,
                    Defect::UnknownLadder,
                    Defect::MaxPlanOffLadder,
                    Defect::UnknownKey,
                    Defect::BadCooldown,
                    Defect::EmptyInstances,
                ][..],
            ),
        )
        .boxed()
    } else {
        Just(None).boxed()
    };
    (
        select(ALARM_TYPES),
        proptest::option::of((any::<bool>(), any::<i16>())),
        action,
        proptest::option::of(select(&["90s", "10m", "1h 30m", "PT15S"][..])),
        proptest::option::of(prop::collection::vec(
            select(
                &[
                    "*",
                    "359559",
                    "prod-*",
                    "4E683759-5EB9-41B3-8794-26F751DE5699",
                ][..],
            ),
            1..3,
        )),
        defect,
    )
        .prop_map(
            |(alarm, threshold, action, cooldown, instances, defect)| GenRule {
                alarm,
                threshold,
                action,
                cooldown,
                instances,
                defect,
            },
        )
}

/// The file's head (defaults and ladders) and one `[[rules]]` block per rule.
fn render(rules: &[GenRule]) -> (String, Vec<String>) {
    let mut head = "[defaults]\ncooldown = \"30m\"\n\n[ladders]\n".to_owned();
    for (i, ladder) in LADDERS.iter().enumerate() {
        let plans: Vec<String> = ladder.iter().map(|p| format!("{p:?}")).collect();
        head += &format!("l{i} = [{}]\n", plans.join(", "));
    }
    let blocks = rules
        .iter()
        .enumerate()
        .map(|(n, rule)| render_rule(n, rule))
        .collect();
    (head, blocks)
}

fn render_rule(n: usize, rule: &GenRule) -> String {
    let defect = rule.defect;
    let alarm = if defect == Some(Defect::UnknownAlarm) {
        "memroy"
    } else {
        rule.alarm
    };
    let mut text = format!("\n[[rules]]\nname = \"r{n}\"\nalarm = {alarm:?}\n");
    match rule.threshold {
        _ if defect == Some(Defect::AboveAndBelow) => text += "above = 1\nbelow = 2\n",
        Some((true, value)) => text += &format!("above = {value}\n"),
        Some((false, value)) => text += &format!("below = {value}.5\n"),
        None => {}
    }
    match (defect, rule.cooldown) {
        (Some(Defect::BadCooldown), _) => text += "cooldown = \"soon\"\n",
        (_, Some(cooldown)) => text += &format!("cooldown = {cooldown:?}\n"),
        _ => {}
    }
    match (defect, &rule.instances) {
        (Some(Defect::EmptyInstances), _) => text += "instances = []\n",
        (_, Some(instances)) => {
            let items: Vec<String> = instances.iter().map(|i| format!("{i:?}")).collect();
            text += &format!("instances = [{}]\n", items.join(", "));
        }
        _ => {}
    }
    if defect == Some(Defect::UnknownKey) {
        text += "colour = \"blue\"\n";
    }
    let ladder_defect = matches!(
        defect,
        Some(Defect::StepsZero | Defect::UnknownLadder | Defect::MaxPlanOffLadder)
    );
    match &rule.action {
        Ok((ladder, steps, max_plan)) => {
            ladder_lines(&mut text, defect, *ladder, *steps, *max_plan);
        }
        Err(_) if ladder_defect => ladder_lines(&mut text, defect, 0, None, None),
        Err(pairs) => {
            // Only upward pairs (by position in PLANS), one per plan: never a loop.
            let mut map: BTreeMap<&str, &str> = BTreeMap::new();
            for &(a, b) in pairs {
                if a != b {
                    map.entry(PLANS[a.min(b)]).or_insert(PLANS[a.max(b)]);
                }
            }
            if map.is_empty() {
                map.insert(PLANS[0], PLANS[1]);
            }
            text += "[rules.targets]\n";
            for (from, to) in map {
                text += &format!("{from:?} = {to:?}\n");
            }
        }
    }
    text
}

fn ladder_lines(
    text: &mut String,
    defect: Option<Defect>,
    ladder: usize,
    steps: Option<u8>,
    max_plan: Option<usize>,
) {
    if defect == Some(Defect::UnknownLadder) {
        *text += "ladder = \"nowhere\"\n";
        return;
    }
    *text += &format!("ladder = \"l{ladder}\"\n");
    match (defect, steps) {
        (Some(Defect::StepsZero), _) => *text += "steps = 0\n",
        (_, Some(steps)) => *text += &format!("steps = {steps}\n"),
        _ => {}
    }
    let plans = LADDERS[ladder];
    match (defect, max_plan) {
        (Some(Defect::MaxPlanOffLadder), _) => *text += "max_plan = \"lion-3\"\n",
        (_, Some(rung)) => *text += &format!("max_plan = {:?}\n", plans[rung % plans.len()]),
        _ => {}
    }
}

/// Validity and, for an invalid file, each error's rule and message (positions aside).
fn outcome(text: &str) -> Result<usize, Vec<(Option<String>, String)>> {
    match rules::parse(FILE, text) {
        Ok(set) => Ok(set.rules().len()),
        Err(RulesFailure::Invalid { errors, .. }) => {
            let mut errors: Vec<_> = errors.into_iter().map(|e| (e.context, e.message)).collect();
            errors.sort();
            Err(errors)
        }
        Err(e) => panic!("{e}"),
    }
}

/// Rules and a permutation of them.
fn shuffled_rules(defects: bool) -> impl Strategy<Value = (Vec<GenRule>, Vec<usize>)> {
    prop::collection::vec(gen_rule(defects), 1..8).prop_flat_map(|rules| {
        let order: Vec<usize> = (0..rules.len()).collect();
        (Just(rules), Just(order).prop_shuffle())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_text_never_panics_the_rules_loader(text in any::<String>()) {
        check_rules_text(&text)?;
    }

    #[test]
    fn toml_like_text_never_panics_the_rules_loader(text in toml_ish()) {
        check_rules_text(&text)?;
    }

    #[test]
    fn a_generated_valid_file_always_loads((rules, order) in shuffled_rules(false)) {
        let (head, blocks) = render(&rules);
        let text = head.clone() + &blocks.concat();
        check_rules_text(&text)?;
        prop_assert_eq!(outcome(&text), Ok(rules.len()), "{}", text);
        let shuffled: String = order.iter().map(|&i| blocks[i].as_str()).collect();
        prop_assert_eq!(outcome(&(head + &shuffled)), Ok(rules.len()));
    }

    #[test]
    fn rule_order_never_changes_the_errors((rules, order) in shuffled_rules(true)) {
        let (head, blocks) = render(&rules);
        let text = head.clone() + &blocks.concat();
        check_rules_text(&text)?;
        let found = outcome(&text);
        let defects: Vec<String> = rules
            .iter()
            .enumerate()
            .filter(|(_, rule)| rule.defect.is_some())
            .map(|(n, _)| format!("rule \"r{n}\""))
            .collect();
        match &found {
            Ok(_) => prop_assert!(defects.is_empty(), "{defects:?} accepted:\n{text}"),
            Err(errors) => {
                // One error per defect, each about its own rule.
                let mut blamed: Vec<String> =
                    errors.iter().map(|(context, _)| context.clone().unwrap_or_default()).collect();
                blamed.sort();
                let mut defects = defects.clone();
                defects.sort();
                prop_assert_eq!(blamed, defects, "{:?}\n{}", errors, text);
            }
        }
        let shuffled: String = order.iter().map(|&i| blocks[i].as_str()).collect();
        prop_assert_eq!(outcome(&(head + &shuffled)), found);
    }
}
