//! Every validation error of the contract has a fixture in `tests/fixtures/rules/invalid/`.
//!
//! Each fixture states what it must produce in `# expect: LINE:COL CONTEXT | MESSAGE`
//! lines; the test asserts exactly those problems are reported (no more, no fewer), each
//! at its line and column, naming its rule, with the message.

use std::path::{Path, PathBuf};

use cloudamqp_autoscaler::rules::{RuleError, RuleSet, RulesFailure};

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
