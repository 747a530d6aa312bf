//! Every validation error of the contract has a fixture in `tests/fixtures/rules/invalid/`.
//!
//! Each fixture states what it must produce in `# expect: LINE:COL CONTEXT | MESSAGE`
//! lines; the test asserts exactly those problems are reported (no more, no fewer), each
//! at its line and column, naming its rule, with the message.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cloudamqp_autoscaler::rules::{InstanceNames, RuleError, RuleSet, RulesFailure, ScaleDown};
use jiff::civil::Weekday;

struct Expectation {
    line: usize,
    column: usize,
    context: Option<String>,
    message: String,
}

fn expectations(text: &str) -> Vec<Expectation> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# expect: "))
        .map(|spec| {
            let (position, rest) = spec.split_once(' ').expect("LINE:COL first");
            let (line, column) = position.split_once(':').expect("LINE:COL");
            let (context, message) = rest
                .split_once(" | ")
                .map_or(("", rest.trim_start_matches("| ")), |x| x);
            Expectation {
                line: line.parse().unwrap(),
                column: column.parse().unwrap(),
                context: (!context.trim().is_empty()).then(|| context.trim().to_owned()),
                message: message.to_owned(),
            }
        })
        .collect()
}

fn invalid_fixtures() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir("tests/fixtures/rules/invalid")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    paths
}

fn errors_of(path: &Path) -> Vec<RuleError> {
    match RuleSet::load(path) {
        Err(RulesFailure::Invalid { errors, .. }) => errors,
        Err(other) => panic!("{}: {other}", path.display()),
        Ok(_) => panic!("{} was accepted", path.display()),
    }
}

#[test]
fn every_invalid_fixture_reports_exactly_its_expected_problems() {
    let fixtures = invalid_fixtures();
    assert!(fixtures.len() >= 20, "fixtures missing: {}", fixtures.len());
    for path in fixtures {
        let text = std::fs::read_to_string(&path).unwrap();
        let expected = expectations(&text);
        assert!(
            !expected.is_empty(),
            "{} has no `# expect:` line",
            path.display()
        );
        let errors = errors_of(&path);
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            errors.len(),
            expected.len(),
            "{}: got {shown:#?}",
            path.display()
        );
        for (error, want) in errors.iter().zip(&expected) {
            let shown = error.to_string();
            assert_eq!(
                (error.location.line, error.location.column),
                (want.line, want.column),
                "{}: position of {shown}",
                path.display()
            );
            assert_eq!(
                error.context,
                want.context,
                "{}: context of {shown}",
                path.display()
            );
            assert!(
                error.message.contains(&want.message),
                "{}: {shown:?} lacks {:?}",
                path.display(),
                want.message
            );
            assert!(
                shown.starts_with(&format!(
                    "{}:{}:{}: ",
                    path.display(),
                    want.line,
                    want.column
                )),
                "{shown}"
            );
        }
    }
}

#[test]
fn every_contract_validation_error_has_a_fixture() {
    // The contract's list of what makes a file invalid, and the fixture for each.
    for name in [
        "unknown-key-in-rule",
        "unknown-top-level-key",
        "unknown-key-in-defaults",
        "both-ladder-and-targets",
        "neither-ladder-nor-targets",
        "unknown-ladder",
        "steps-below-one",
        "duplicate-rule-name",
        "plan-twice-in-ladder",
        "max-plan-not-on-ladder",
        "targets-to-itself",
        "targets-loop",
        "bad-rule-duration",
        "bad-default-duration",
        "above-and-below",
        "unknown-alarm-type",
        "wrong-value-type",
    ] {
        let path = PathBuf::from(format!("tests/fixtures/rules/invalid/{name}.toml"));
        assert!(path.exists(), "{} missing", path.display());
    }
}

#[test]
fn a_file_with_several_problems_reports_them_all_in_line_order() {
    let errors = errors_of(Path::new(
        "tests/fixtures/rules/invalid/several-problems.toml",
    ));
    assert_eq!(errors.len(), 7, "{errors:#?}");
    let lines: Vec<usize> = errors.iter().map(|e| e.location.line).collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted);
}

#[test]
fn an_unreadable_file_is_an_io_failure_not_a_validation_one() {
    let failure = RuleSet::load(Path::new("tests/fixtures/rules/does-not-exist.toml")).unwrap_err();
    assert!(matches!(failure, RulesFailure::Io { .. }), "{failure}");
    assert!(failure.to_string().contains("does-not-exist.toml"));
}

#[test]
fn a_file_that_is_not_utf8_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.toml");
    std::fs::write(&path, b"[ladders]\nsingle = [\"bunny-1\xff\"]\n").unwrap();
    let errors = errors_of(&path);
    assert!(errors[0].message.contains("not UTF-8"), "{errors:?}");
}

#[test]
fn loops_of_targets_are_reported_once_and_chains_are_fine() {
    let chain = r#"
[[rules]]
name = "disk"
alarm = "disk"
[rules.targets]
"bunny-1" = "hare-1"
"hare-1" = "rabbit-1"
"#;
    assert!(cloudamqp_autoscaler::rules::parse("chain.toml", chain).is_ok());
}

#[test]
fn bunny_2_is_valid_but_warned_about() {
    let text = "[ladders]\nsingle = [\"bunny-1\", \"bunny-2\"]\n[[rules]]\nname = \"m\"\nalarm = \"memory\"\nladder = \"single\"\n";
    let rules = cloudamqp_autoscaler::rules::parse("seed.toml", text).unwrap();
    let warnings: Vec<String> = rules.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("seed.toml:2:23: "), "{warnings:?}");
    assert!(warnings[0].contains("no plan \"bunny-2\""), "{warnings:?}");
}

#[test]
fn every_scale_down_refusal_has_a_fixture() {
    // The contract's list for `[scale_down]` (a bad duration, memory_headroom outside 1-100,
    // window shorter than two check_every, min_plan on no ladder, an unknown time zone or
    // day, from = to) and the other refusals of the section, one fixture each.
    for name in [
        "bad-duration",
        "check-every-zero",
        "window-shorter-than-two-looks",
        "check-every-longer-than-half-the-window",
        "bad-window-alone",
        "headroom-zero",
        "headroom-above-100",
        "headroom-not-a-number",
        "min-plan-not-on-ladder",
        "unknown-time-zone",
        "unknown-day",
        "empty-days",
        "from-equals-to",
        "hour-25",
        "time-2am",
        "missing-from",
        "unknown-key",
        "unknown-key-in-hours",
        "memory-limit-not-a-size",
        "memory-limit-zero",
        "not-a-table",
        "several-problems",
    ] {
        let path = PathBuf::from(format!(
            "tests/fixtures/rules/invalid/scale-down-{name}.toml"
        ));
        assert!(path.exists(), "{} missing", path.display());
    }
}

#[test]
fn a_scale_down_section_with_several_problems_reports_them_all_in_line_order() {
    let errors = errors_of(Path::new(
        "tests/fixtures/rules/invalid/scale-down-several-problems.toml",
    ));
    assert_eq!(errors.len(), 11, "{errors:#?}");
    assert!(
        errors
            .iter()
            .all(|e| e.context.as_deref() == Some("[scale_down]")),
        "{errors:#?}"
    );
    let positions: Vec<(usize, usize)> = errors
        .iter()
        .map(|e| (e.location.line, e.location.column))
        .collect();
    let mut sorted = positions.clone();
    sorted.sort();
    assert_eq!(positions, sorted);
    // check_every was refused: the window is not compared with a default nobody wrote.
    assert!(
        !errors.iter().any(|e| e.message.contains("two check_every")),
        "{errors:#?}"
    );
}

/// A ladder and a rule around `section`, which starts on line 4.
fn parse_scale_down(section: &str) -> Result<RuleSet, RulesFailure> {
    const LADDERS: &str = "[ladders]\nsingle = [\"bunny-1\", \"hare-1\", \"rabbit-1\"]\n\n";
    const RULE: &str = "\n[[rules]]\nname = \"m\"\nalarm = \"memory\"\nladder = \"single\"\n";
    cloudamqp_autoscaler::rules::parse("sd.toml", &format!("{LADDERS}{section}{RULE}"))
}

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn a_full_scale_down_section_parses_to_its_values() {
    let rules = parse_scale_down(
        r#"[scale_down]
instances = ["prod-*", 359559, "*"]
quiet_for = "90m"
after_up = "6h"
after_down = "24h"
check_every = "2m 30s"
window = "45m"
memory_headroom = 62.5
min_plan = "hare-1"
memory_limits = { "hare-1" = "3.2GiB", "rabbit-1" = 8589934592, "bunny-1" = "1500MB" }
hours = { days = ["sun", "SAT", "sat"], from = "22:30", to = "04:00", timezone = "Europe/Stockholm" }
"#,
    )
    .unwrap();
    let section = rules.scale_down().expect("the section is read");
    let selectors: Vec<&str> = section.selectors.iter().map(|s| s.as_str()).collect();
    assert_eq!(selectors, ["prod-*", "359559", "*"]);
    assert_eq!(section.quiet_for, Duration::from_secs(90 * 60));
    assert_eq!(section.after_up, 6 * HOUR);
    assert_eq!(section.after_down, 24 * HOUR);
    assert_eq!(section.check_every, Duration::from_secs(150));
    assert_eq!(section.window, Duration::from_secs(45 * 60));
    assert_eq!(section.memory_headroom, 62.5);
    assert_eq!(section.min_plan.as_deref(), Some("hare-1"));
    let limits: BTreeMap<&str, u64> = section
        .memory_limits
        .iter()
        .map(|(plan, bytes)| (plan.as_str(), *bytes))
        .collect();
    assert_eq!(
        limits,
        BTreeMap::from([
            ("bunny-1", 1_500_000_000),
            ("hare-1", 3_435_973_836),
            ("rabbit-1", 8_589_934_592),
        ])
    );
    let hours = section.hours.as_ref().expect("hours are read");
    // Days case-insensitive, each once, in the order written.
    assert_eq!(hours.days, [Weekday::Sunday, Weekday::Saturday]);
    assert_eq!(hours.from, jiff::civil::time(22, 30, 0, 0));
    assert_eq!(hours.to, jiff::civil::time(4, 0, 0, 0));
    assert_eq!(hours.zone_name, "Europe/Stockholm");
    assert_eq!(
        hours.timezone.iana_name(),
        Some("Europe/Stockholm"),
        "{:?}",
        hours.timezone
    );
    assert!(rules.warnings().is_empty(), "{:?}", rules.warnings());
    // It selects by any name of the instance.
    assert!(section.selects(&InstanceNames {
        id: Some("1"),
        ..InstanceNames::default()
    }));
}

#[test]
fn an_empty_scale_down_section_means_every_default_and_an_absent_one_none() {
    let rules = parse_scale_down("[scale_down]\n").unwrap();
    let section = rules.scale_down().expect("an empty table is a section");
    let defaults = ScaleDown::with_defaults();
    assert!(section.selectors.is_empty());
    assert_eq!(
        (
            section.quiet_for,
            section.after_up,
            section.after_down,
            section.check_every,
            section.window
        ),
        (
            defaults.quiet_for,
            defaults.after_up,
            defaults.after_down,
            defaults.check_every,
            defaults.window
        )
    );
    assert_eq!(
        (section.quiet_for, section.after_up, section.after_down),
        (2 * HOUR, 6 * HOUR, 24 * HOUR)
    );
    assert_eq!(
        (section.check_every, section.window),
        (Duration::from_secs(300), HOUR)
    );
    assert_eq!(section.memory_headroom, 60.0);
    assert_eq!(section.memory_headroom, defaults.memory_headroom);
    assert_eq!(section.min_plan, None);
    assert!(section.memory_limits.is_empty());
    assert!(section.hours.is_none());
    // Hours without `days` or `timezone`: every day, UTC.
    let rules =
        parse_scale_down("[scale_down]\nhours = { from = \"02:00\", to = \"05:00\" }\n").unwrap();
    let hours = rules.scale_down().unwrap().hours.as_ref().unwrap();
    assert_eq!(hours.days.len(), 7);
    assert_eq!(hours.zone_name, "UTC");

    assert!(parse_scale_down("").unwrap().scale_down().is_none());
}

#[test]
fn times_of_day_are_exactly_hh_mm() {
    // `hours = { from = "…", to = "05:00" }` on line 5: the value starts at column 19.
    for bad in [
        "25:00", "2am", "2:00", "+2:00", "02:60", "0200", "02:00:00", "24:00",
    ] {
        let section = format!("[scale_down]\nhours = {{ from = \"{bad}\", to = \"05:00\" }}\n");
        let Err(RulesFailure::Invalid { errors, .. }) = parse_scale_down(&section) else {
            panic!("{bad:?} was accepted");
        };
        assert_eq!(errors.len(), 1, "{bad:?}: {errors:#?}");
        assert_eq!(
            errors[0].to_string(),
            format!(
                "sd.toml:5:19: [scale_down]: `from` {bad:?} is not a time of day; write it as \"HH:MM\", e.g. \"02:00\""
            )
        );
    }
    for good in ["00:00", "23:59", "09:05"] {
        let section = format!("[scale_down]\nhours = {{ from = \"{good}\", to = \"05:00\" }}\n");
        assert!(parse_scale_down(&section).is_ok(), "{good:?}");
    }
}

fn warnings_of(section: &str) -> Vec<String> {
    parse_scale_down(section)
        .unwrap()
        .warnings()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn hours_no_longer_than_the_window_are_warned_about() {
    // The window written: the warning points at it.
    let warnings = warnings_of(
        "[scale_down]\nwindow = \"2h\"\nhours = { from = \"02:00\", to = \"03:00\" }\n",
    );
    assert_eq!(
        warnings,
        [
            "sd.toml:5:11: [scale_down]: the hours last 1h and window is 2h: a step down needs a whole window of passing looks inside the hours, so it can never happen; lengthen the hours or shorten the window"
        ]
    );
    // The default window (1h) and hours of 30 minutes: at the hours.
    let warnings = warnings_of("[scale_down]\nhours = { from = \"02:00\", to = \"02:30\" }\n");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("sd.toml:5:9: [scale_down]: the hours last 30m and window is 1h"),
        "{warnings:?}"
    );
    // Exactly as long as the window: the streak starts inside the hours and the step is
    // made at a look inside them, so it never fills either.
    let warnings = warnings_of("[scale_down]\nhours = { from = \"23:30\", to = \"00:30\" }\n");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("the hours last 1h and window is 1h"),
        "{warnings:?}"
    );
    // Longer than the window, also past midnight: no warning.
    assert!(warnings_of("[scale_down]\nhours = { from = \"23:00\", to = \"01:00\" }\n").is_empty());
}

#[test]
fn a_memory_limit_of_a_plan_on_no_ladder_is_warned_about() {
    let rules =
        parse_scale_down("[scale_down]\nmemory_limits = { \"panda-1\" = \"8GiB\" }\n").unwrap();
    assert_eq!(
        rules.scale_down().unwrap().memory_limits.get("panda-1"),
        Some(&8_589_934_592)
    );
    let warnings: Vec<String> = rules.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "sd.toml:5:20: [scale_down]: memory_limits names \"panda-1\", which is on no ladder: no step down goes to it"
        ]
    );
}

#[test]
fn wrong_types_in_scale_down_name_the_key_plainly() {
    for (section, want) in [
        (
            "[scale_down]\nmin_plan = 5\n",
            "sd.toml:5:12: [scale_down]: `min_plan` must be a string, not an integer",
        ),
        (
            "[scale_down]\nhours = { days = [\"sat\", 6], from = \"02:00\", to = \"05:00\" }\n",
            "sd.toml:5:26: [scale_down]: a `days` entry must be a day such as \"sat\", not an integer",
        ),
        (
            "[scale_down]\nhours = \"weekends\"\n",
            "sd.toml:5:10: [scale_down]: `hours` must be a table, not a string",
        ),
        (
            "[scale_down]\nmemory_limits = \"3GiB\"\n",
            "sd.toml:5:18: [scale_down]: `memory_limits` must be a table, not a string",
        ),
    ] {
        let Err(RulesFailure::Invalid { errors, .. }) = parse_scale_down(section) else {
            panic!("{section:?} was accepted");
        };
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(shown, [want], "{section:?}");
    }
}
