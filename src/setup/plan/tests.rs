use secrecy::SecretString;

use super::*;
use crate::rules::parse;

const LADDER: &str = "[ladders]\nsingle = [\"bunny-1\", \"hare-1\", \"rabbit-1\"]\n";

fn rules(extra: &str) -> RuleSet {
    parse("rules.toml", &format!("{LADDER}{extra}")).unwrap()
}

fn rule(name: &str, alarm: &str, threshold: &str, more: &str) -> String {
    format!(
        "[[rules]]\nname = \"{name}\"\nalarm = \"{alarm}\"\n{threshold}\nladder = \"single\"\n{more}\n"
    )
}

fn instance(plan: &str) -> InstanceSummary {
    InstanceSummary {
        id: 7,
        name: "prod-a".into(),
        plan: plan.into(),
        providerid: None,
    }
}

fn url() -> SecretString {
    url_with_token("https://h/cloudamqp/alarm", "tok")
}

fn ours(id: u64, value: &str) -> Recipient {
    Recipient {
        id,
        kind: "webhook".into(),
        value: value.into(),
        name: RECIPIENT_NAME.into(),
    }
}

fn alarm(
    id: u64,
    kind: &str,
    value: Option<u64>,
    reminder: u64,
    recipients: &[u64],
) -> AlarmConfig {
    AlarmConfig {
        id,
        kind: kind.into(),
        value_threshold: value,
        time_threshold: Some(300),
        reminder_interval: Some(reminder),
        recipients: recipients.to_vec(),
        enabled: true,
    }
}

#[test]
fn thresholds_fire_for_every_rule_and_reminders_follow_cooldowns_and_quiet_for() {
    let set = rules(&format!(
        "{}{}{}{}[scale_down]\nquiet_for = \"40m\"\n",
        rule("m1", "memory", "above = 95", "cooldown = \"1h\""),
        rule("m2", "memory", "above = 80.5", "cooldown = \"10m\""),
        rule("d1", "disk", "below = 15", ""),
        rule("d2", "disk", "below = 9.2", "instances = [\"other\"]"),
    ));
    let wanted = wanted(&set, &instance("bunny-1"), false);
    assert!(wanted.problems.is_empty(), "{:?}", wanted.problems);
    assert_eq!(
        wanted.alarms,
        vec![
            WantedAlarm {
                kind: "memory".into(),
                value_threshold: Some(80),
                time_threshold: 300,
                // The longest cooldown is 1h, at most half of quiet_for.
                reminder_interval: 20 * 60,
                rules: vec!["m1".into(), "m2".into()],
            },
            WantedAlarm {
                kind: "disk".into(),
                value_threshold: Some(15),
                time_threshold: 300,
                reminder_interval: 20 * 60,
                rules: vec!["d1".into()],
            },
        ]
    );
}

#[test]
fn alarm_sections_override_the_defaults_and_thresholdless_rules_get_the_default() {
    let set = rules(&format!(
        "{}{}[alarms.cpu]\ntime_threshold = \"10m\"\nreminder_interval = \"0s\"\n",
        rule("c", "cpu", "", ""),
        rule("n", "netsplit", "", ""),
    ));
    let wanted = wanted(&set, &instance("bunny-1"), false);
    assert_eq!(wanted.alarms[0].value_threshold, Some(90));
    assert_eq!(
        (
            wanted.alarms[0].time_threshold,
            wanted.alarms[0].reminder_interval
        ),
        (600, 0)
    );
    assert_eq!(wanted.alarms[1].kind, "netsplit");
    assert_eq!(wanted.alarms[1].value_threshold, None);
    // The default cooldown, 30m, without [scale_down].
    assert_eq!(wanted.alarms[1].reminder_interval, 1800);
}

#[test]
fn a_shared_plan_and_a_queue_rule_without_threshold_are_problems_and_notice_is_a_note() {
    let set = rules(&format!(
        "{}{}{}",
        rule("m", "memory", "above = 80", ""),
        rule("q", "queue", "", ""),
        rule("n", "notice", "", ""),
    ));
    let planned = plan(&set, &instance("lemur"), true, &[], &[], &url());
    assert_eq!(planned.problems.len(), 2, "{:?}", planned.problems);
    assert!(
        planned.problems[0].contains("shared"),
        "{:?}",
        planned.problems
    );
    assert!(
        planned.problems[1].starts_with("queue: no rule"),
        "{:?}",
        planned.problems
    );
    // The notice alarm still needs our recipient to reach us; nothing else is created.
    assert_eq!(planned.steps, vec![Step::CreateRecipient]);
    assert!(planned.notes[0].contains("already reaches every recipient"));
}

#[test]
fn ours_is_updated_in_place_others_and_duplicates_are_left_alone() {
    let set = rules(&format!(
        "{}{}",
        rule("m", "memory", "above = 80", ""),
        rule("c", "cpu", "above = 90", ""),
    ));
    let recipients = [
        Recipient {
            id: 661,
            kind: "email".into(),
            value: "team@x".into(),
            name: "Default".into(),
        },
        ours(662, "https://h/cloudamqp/alarm?token=old"),
        ours(663, "https://h/other"),
    ];
    let alarms = [
        alarm(679, "notice", None, 0, &[]),
        alarm(680, "memory", Some(90), 0, &[662]),
        alarm(681, "memory", Some(70), 0, &[661]),
        alarm(682, "memory", Some(80), 1800, &[662]),
        alarm(683, "cpu", Some(90), 1800, &[662, 661]),
    ];
    let planned = plan(
        &set,
        &instance("bunny-1"),
        false,
        &recipients,
        &alarms,
        &url(),
    );
    let lines: Vec<String> = planned.steps.iter().map(|s| s.line("U")).collect();
    assert_eq!(
        lines,
        [
            "~ update recipient cloudamqp-autoscaler 662 (value: https://h/cloudamqp/alarm?token=… -> https://h/cloudamqp/alarm?token=…, another token)",
            // 683 also goes to the Default recipient: not ours.
            "+ create alarm cpu (value_threshold 90, time_threshold 300, reminder_interval 1800)",
            "~ update alarm memory 680 (value_threshold: 90 -> 80, reminder_interval: 0 -> 1800)",
        ]
    );
    assert_eq!(planned.notes.len(), 2, "{:?}", planned.notes);
    assert!(planned.notes[1].contains("alarm memory 682"));
    assert!(
        lines
            .iter()
            .chain(&planned.notes)
            .all(|l| !l.contains("=old") && !l.contains("=tok"))
    );
}

#[test]
fn everything_in_place_is_unchanged() {
    let set = rules(&rule("m", "memory", "above = 80", ""));
    let planned = plan(
        &set,
        &instance("bunny-1"),
        false,
        &[ours(662, "https://h/cloudamqp/alarm?token=tok")],
        &[alarm(680, "memory", Some(80), 1800, &[662])],
        &url(),
    );
    assert!(planned.steps.iter().all(|s| !s.writes()), "{planned:?}");
}

#[test]
fn urls_get_the_token_added_and_shown_without_it() {
    use secrecy::ExposeSecret;
    assert_eq!(
        url_with_token("https://h/a?x=1", "a b&c").expose_secret(),
        "https://h/a?x=1&token=a%20b%26c"
    );
    assert_eq!(
        shown_url("https://h/a?x=1&token=secret#f"),
        "https://h/a?x=1&token=…#f"
    );
    assert_eq!(shown_url("https://h/a"), "https://h/a");
}
