//! Inputs the fuzzers (see `fuzz/` and RELIABILITY-fuzzing.md) once broke, kept as
//! fixtures under `tests/fixtures/fuzz/` so they stay fixed.

use cloudamqp_autoscaler::alarm;
use cloudamqp_autoscaler::redact::redact_json;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("tests/fixtures/fuzz/{name}")).unwrap()
}

/// The `alarm` target's check: an accepted body's redacted journal copy parses back to the
/// same alarm.
fn assert_redacted_copy_parses_back(body: &[u8]) {
    let (parsed, json) = alarm::parse_with_json(body).expect("the fixture is a valid alarm");
    let redacted = redact_json(&json);
    assert_eq!(
        alarm::parse(redacted.as_bytes()).as_ref(),
        Ok(&parsed),
        "{redacted}"
    );
}

/// serde_json's default float parser is best-effort and may be one unit in the last place
/// off: `9.555555555555555e27` was read as `9.555555555555556e27`, so the value we decided
/// with, the value column and the journaled body disagreed. Fixed by serde_json's
/// `float_roundtrip` feature (correctly rounded parsing).
#[test]
fn alarm_values_are_parsed_correctly_rounded() {
    let body = fixture("alarm-float-roundtrip.json");
    let parsed = alarm::parse(&body).unwrap();
    assert_eq!(parsed.value, Some("9.555555555555555e27".parse().unwrap()));
    assert_redacted_copy_parses_back(&body);
}
