//! The webhook payload parser against the fixtures in `tests/fixtures/alarms/`.

use cloudamqp_autoscaler::alarm::{self, Alarm, AlarmError};
use cloudamqp_autoscaler::instance::InstanceRef;

fn fixture(kind: &str, name: &str) -> Vec<u8> {
    std::fs::read(format!("tests/fixtures/alarms/{kind}/{name}")).unwrap()
}

fn uuid(text: &str) -> Option<InstanceRef> {
    Some(InstanceRef::Uuid(text.parse().unwrap()))
}

fn alarm(kind: &str, value: Option<f64>, instance: Option<InstanceRef>) -> Alarm {
    Alarm {
        kind: kind.into(),
        value,
        instance,
        resolved: false,
        message: None,
        triggered_at: None,
    }
}

#[test]
fn every_accepted_shape_parses_to_the_expected_alarm() {
    let id = Some(InstanceRef::Id(359_559));
    let cases: Vec<(&str, Alarm)> = vec![
        (
            "howto.json",
            Alarm {
                triggered_at: Some("2026-02-20T08:30:00Z".into()),
                ..alarm(
                    "memory",
                    Some(85.0),
                    uuid("3555175d-4055-46e9-81b1-288a17846b9a"),
                )
            },
        ),
        ("type-and-instance.json", alarm("cpu", Some(91.5), id)),
        ("value-as-string.json", alarm("memory", Some(85.5), id)),
        (
            "resolved-top-level.json",
            Alarm {
                resolved: true,
                ..alarm("memory", Some(42.0), id)
            },
        ),
        (
            "resolved-in-metadata.json",
            Alarm {
                resolved: true,
                ..alarm("memory", Some(42.0), id)
            },
        ),
        (
            "message-and-unknown-fields.json",
            Alarm {
                message: Some("Disk usage 91% on bunny1-test-01".into()),
                triggered_at: Some("2026-11-26T17:55:00Z".into()),
                ..alarm("disk", Some(91.0), id)
            },
        ),
        ("byte-order-mark.json", alarm("queue", Some(1000.0), id)),
        (
            "nulls-count-as-absent.json",
            alarm(
                "connection",
                None,
                uuid("4e683759-5eb9-41b3-8794-26f751de5699"),
            ),
        ),
        (
            "no-value-no-instance.json",
            alarm("server_unreachable", None, None),
        ),
        (
            "type-case-and-exponent.json",
            alarm("memory", Some(100.0), id),
        ),
    ];
    let on_disk = std::fs::read_dir("tests/fixtures/alarms/valid")
        .unwrap()
        .count();
    assert_eq!(
        on_disk,
        cases.len(),
        "every valid fixture has an expectation"
    );
    for (name, expected) in cases {
        assert_eq!(
            alarm::parse(&fixture("valid", name)),
            Ok(expected),
            "{name}"
        );
    }
}

/// Whether an error is of the expected kind.
type IsExpected = fn(&AlarmError) -> bool;

#[test]
fn every_refused_body_is_a_typed_error_with_a_clear_message() {
    use AlarmError::*;
    let cases: Vec<(&str, IsExpected, &str)> = vec![
        (
            "form-encoded.txt",
            |e| matches!(e, NotJson(_)),
            "not valid JSON",
        ),
        (
            "array.json",
            |e| matches!(e, NotAnObject("an array")),
            "must be a JSON object, not an array",
        ),
        (
            "bare-string.json",
            |e| matches!(e, NotAnObject("a string")),
            "not a string",
        ),
        (
            "no-type.json",
            |e| matches!(e, MissingType),
            "\"alarm_type\"",
        ),
        (
            "blank-type.json",
            |e| matches!(e, MissingType),
            "non-empty string",
        ),
        (
            "type-not-a-string.json",
            |e| matches!(e, MissingType),
            "no type",
        ),
        (
            "value-nan-string.json",
            |e| matches!(e, BadValue(_)),
            "\"NaN\"",
        ),
        (
            "value-infinity-string.json",
            |e| matches!(e, BadValue(_)),
            "finite number",
        ),
        ("value-word.json", |e| matches!(e, BadValue(_)), "\"high\""),
        (
            "value-boolean.json",
            |e| matches!(e, BadValue(_)),
            "not a boolean",
        ),
        (
            "value-array.json",
            |e| matches!(e, BadValue(_)),
            "not an array",
        ),
        (
            "instance-float.json",
            |e| matches!(e, BadInstance(_)),
            "1.5",
        ),
        (
            "instance-negative.json",
            |e| matches!(e, BadInstance(_)),
            "-1",
        ),
        (
            "instance-name.json",
            |e| matches!(e, BadInstance(_)),
            "\"prod\"",
        ),
        (
            "instance-object.json",
            |e| matches!(e, BadInstance(_)),
            "an object",
        ),
        (
            "resolved-string.json",
            |e| matches!(e, BadResolved(_)),
            "true or false",
        ),
        (
            "resolved-number-in-metadata.json",
            |e| matches!(e, BadResolved(_)),
            "the number 1",
        ),
        (
            "number-out-of-range.json",
            |e| matches!(e, NotJson(_)),
            "out of range",
        ),
        ("not-utf8.json", |e| matches!(e, NotUtf8), "UTF-8"),
        (
            "nested-65-levels.json",
            |e| matches!(e, TooDeep),
            "deeper than 64",
        ),
        ("empty.json", |e| matches!(e, NotJson(_)), "EOF"),
        ("truncated.json", |e| matches!(e, NotJson(_)), "EOF"),
    ];
    let on_disk = std::fs::read_dir("tests/fixtures/alarms/invalid")
        .unwrap()
        .count();
    assert_eq!(
        on_disk,
        cases.len(),
        "every invalid fixture has an expectation"
    );
    for (name, is_expected, fragment) in cases {
        let error = alarm::parse(&fixture("invalid", name)).expect_err(name);
        assert!(is_expected(&error), "{name}: {error:?}");
        assert!(
            error.to_string().contains(fragment),
            "{name}: {error} lacks {fragment:?}"
        );
    }
}

#[test]
fn error_messages_are_bounded_whatever_was_sent() {
    let long = "9".repeat(10_000) + "x";
    let body = format!(r#"{{"alarm_type":"memory","value":"{long}"}}"#);
    let error = alarm::parse(body.as_bytes()).unwrap_err();
    assert!(error.to_string().len() < 200, "{error}");
}
