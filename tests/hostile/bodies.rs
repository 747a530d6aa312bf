//! Bodies that are not an alarm: not JSON, not an object, fields of the wrong type,
//! numbers no `f64` holds, nesting past the contract's 64 levels. All `400`, all with the
//! right token, none recorded.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::support::ID;
use crate::{HARMLESS, alarms, app, assert_nothing_recorded, assert_unharmed, post, refused};

/// Posts every case, expecting `400` with an `invalid alarm: …` error and nothing
/// recorded; returns how many were sent.
async fn all_refused(app: &crate::support::TestApp, cases: &[(String, Vec<u8>)]) -> usize {
    let before = alarms(app);
    for (case, body) in cases {
        let response = post(app, body.clone()).await;
        let message = refused(response, StatusCode::BAD_REQUEST, case).await;
        assert!(message.starts_with("invalid alarm: "), "{case}: {message}");
        assert_nothing_recorded(app, before, case);
    }
    cases.len()
}

fn case(name: &str, body: impl Into<Vec<u8>>) -> (String, Vec<u8>) {
    (name.to_owned(), body.into())
}

/// An otherwise valid alarm with one field replaced: `field` set to the JSON text `json`.
fn with(field: &str, json: &str) -> (String, Vec<u8>) {
    let mut fields = vec![
        ("alarm_type", "\"memory\"".to_owned()),
        ("value", "85".to_owned()),
        ("instance_id", ID.to_string()),
    ];
    match fields.iter_mut().find(|(name, _)| *name == field) {
        Some(entry) => entry.1 = json.to_owned(),
        None => fields.push((field, json.to_owned())),
    }
    let body = fields
        .iter()
        .map(|(name, value)| format!("\"{name}\":{value}"))
        .collect::<Vec<_>>()
        .join(",");
    (
        format!("{field} = {json}"),
        format!("{{{body}}}").into_bytes(),
    )
}

/// An object with `"type":"cpu"` whose deepest value sits `levels` containers down (the
/// outer object counts as one), built from arrays or from objects.
fn nested(levels: usize, objects: bool) -> String {
    let inner = levels - 1;
    if objects {
        format!(
            "{{\"type\":\"cpu\",\"x\":{}1{}}}",
            "{\"a\":".repeat(inner),
            "}".repeat(inner)
        )
    } else {
        format!(
            "{{\"type\":\"cpu\",\"x\":{}1{}}}",
            "[".repeat(inner),
            "]".repeat(inner)
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_that_are_not_a_json_object_are_400() {
    let app = app().await;
    let valid = br#"{"alarm_type":"memory","value":85}"#;
    let cases = vec![
        case("not JSON", "memory alarm at 85%"),
        case("a JSON array", r#"[{"alarm_type":"memory","value":85}]"#),
        case("an empty array", "[]"),
        case("a JSON string", r#""memory""#),
        case("a JSON number", "85"),
        case("JSON null", "null"),
        case("JSON true", "true"),
        case("JSON false", "false"),
        case("an empty body", ""),
        case("whitespace only", " \t\r\n  \n"),
        case("a BOM then garbage", b"\xEF\xBB\xBFgarbage".to_vec()),
        case("a BOM alone", b"\xEF\xBB\xBF".to_vec()),
        case(
            "two BOMs",
            [b"\xEF\xBB\xBF\xEF\xBB\xBF".as_slice(), valid].concat(),
        ),
        case(
            "invalid UTF-8 outside strings",
            [b"\xFF\xFE".as_slice(), valid].concat(),
        ),
        case(
            "invalid UTF-8 inside a string",
            b"{\"alarm_type\":\"mem\xC3\x28ory\",\"value\":85}".to_vec(),
        ),
        case(
            "a truncated UTF-8 sequence in a string",
            b"{\"alarm_type\":\"memory\",\"message\":\"\xE2\x82\"}".to_vec(),
        ),
        case(
            "UTF-16 with its BOM",
            [0xFF, 0xFE]
                .into_iter()
                .chain(valid.iter().flat_map(|b| [*b, 0]))
                .collect::<Vec<u8>>(),
        ),
        case(
            "a lone surrogate escape",
            r#"{"alarm_type":"mem\ud800ory"}"#,
        ),
        case(
            "a raw control character in a string",
            "{\"alarm_type\":\"memory\",\"message\":\"a\u{1}b\"}",
        ),
        case("truncated after the key", r#"{"alarm_type":"#),
        case("truncated in a string", r#"{"alarm_type":"mem"#),
        case(
            "truncated before the brace",
            r#"{"alarm_type":"memory","value":85"#,
        ),
        case("only an opening brace", "{"),
        case("trailing garbage", r#"{"alarm_type":"memory"} and more"#),
        case(
            "two objects",
            r#"{"alarm_type":"memory"}{"alarm_type":"cpu"}"#,
        ),
        case(
            "a comment",
            r#"{"alarm_type":"memory" /* 85 */, "value":85}"#,
        ),
        case("single quotes", "{'alarm_type':'memory'}"),
        case("a trailing comma", r#"{"alarm_type":"memory",}"#),
        case("an unquoted key", r#"{alarm_type:"memory"}"#),
        case("a NUL byte", b"{\"alarm_type\":\"memory\"}\0".to_vec()),
        case("form-encoded", "alarm_type=memory&value=85"),
    ];
    let sent = all_refused(&app, &cases).await;
    assert!(sent >= 30, "{sent}");
    assert_unharmed(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_of_the_wrong_type_or_out_of_range_are_400() {
    let app = app().await;
    let four_hundred_digits = format!("1{}", "0".repeat(399));
    let cases = vec![
        // `value`: numbers no f64 holds, non-finite strings, other types.
        with("value", "1e400"),
        with("value", "-1e400"),
        with("value", &four_hundred_digits),
        with("value", &format!("-{four_hundred_digits}")),
        with("value", "NaN"),
        with("value", "Infinity"),
        with("value", r#""NaN""#),
        with("value", r#""nan""#),
        with("value", r#""Infinity""#),
        with("value", r#""-Infinity""#),
        with("value", r#""inf""#),
        with("value", r#""1e400""#),
        with("value", &format!("\"{four_hundred_digits}\"")),
        with("value", r#""""#),
        with("value", r#""85%""#),
        with("value", r#""0x55""#),
        with("value", "true"),
        with("value", "[85]"),
        with("value", r#"{"value":85}"#),
        // The type: missing, empty, blank, not a string.
        case("no type at all", r#"{"value":85,"instance_id":359559}"#),
        case("an empty object", "{}"),
        with("alarm_type", r#""""#),
        with("alarm_type", r#""   \t ""#),
        with("alarm_type", "5"),
        with("alarm_type", r#"{"name":"memory"}"#),
        with("alarm_type", r#"["memory"]"#),
        with("alarm_type", "true"),
        with("alarm_type", "null"),
        case(
            "a valid `type` shadowed by a numeric `alarm_type`",
            r#"{"alarm_type":7,"type":"memory","value":85}"#,
        ),
        // The instance: not an integer, a numeric string nor a UUID.
        with("instance_id", "-1"),
        with("instance_id", "1.5"),
        with("instance_id", "1e3"),
        with("instance_id", "18446744073709551616"),
        with("instance_id", r#""18446744073709551616""#),
        with("instance_id", r#""-1""#),
        with("instance_id", r#""prod""#),
        with("instance_id", r#""""#),
        with("instance_id", r#""4e683759-5eb9-41b3-8794-26f751de569""#),
        with("instance_id", r#""4e683759-5eb9-41b3-8794-26f751de569z""#),
        with("instance_id", r#""{4e683759-5eb9-41b3-8794-26f751de5699}""#),
        with("instance_id", r#""4e6837595eb941b3879426f751de5699""#),
        with("instance_id", "true"),
        with("instance_id", "[359559]"),
        with("instance_id", r#"{"id":359559}"#),
        case(
            "`instance` as a name",
            r#"{"alarm_type":"memory","value":85,"instance":"prod"}"#,
        ),
        // `resolved`: not a boolean, at the top or under `metadata`.
        with("resolved", r#""true""#),
        with("resolved", "1"),
        with("resolved", "[true]"),
        case(
            "metadata.resolved as a string",
            r#"{"alarm_type":"memory","metadata":{"resolved":"yes"}}"#,
        ),
    ];
    all_refused(&app, &cases).await;
    assert_unharmed(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nesting_is_accepted_to_exactly_64_levels_and_refused_beyond_even_at_10_000() {
    let app = app().await;
    // The contract: "Nesting deeper than 64 levels is refused". The outer object is level 1.
    for objects in [false, true] {
        let response = post(&app, nested(64, objects)).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "64 levels");
    }
    let before = alarms(&app);
    assert_eq!(before, 2);
    let mut cases = vec![
        case("65 levels of arrays", nested(65, false)),
        case("65 levels of objects", nested(65, true)),
        case(
            "129 levels (past the parser's own limit)",
            nested(129, false),
        ),
        case("10 000 `[`", "[".repeat(10_000)),
        case(
            "10 000 `[` then 10 000 `]`",
            "[".repeat(10_000) + &"]".repeat(10_000),
        ),
        case("10 000 `{\"a\":`", "{\"a\":".repeat(10_000)),
    ];
    // The longest run of `[` that fits the size limit.
    cases.push(case("65 536 `[`", "[".repeat(64 * 1024)));
    for (name, body) in &cases {
        let started = Instant::now();
        let response = post(&app, body.clone()).await;
        let message = refused(response, StatusCode::BAD_REQUEST, name).await;
        assert!(
            message.contains("nested deeper than 64"),
            "{name}: {message}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{name} took {:?}",
            started.elapsed()
        );
        assert_nothing_recorded(&app, before, name);
    }
    assert_unharmed(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_keys_are_not_refused_and_the_last_one_wins() {
    // The contract asks for a tolerant parser and does not forbid duplicate names; the
    // daemon reads a body the way serde_json does: the last occurrence of a key wins, both
    // for what is decided and for what is journaled (the same parsed value), so the two
    // can never disagree.
    let app = app().await;
    let refused_case = r#"{"alarm_type":"notice","value":85,"value":"NaN"}"#;
    let message = refused(
        post(&app, refused_case).await,
        StatusCode::BAD_REQUEST,
        "a valid value, then NaN",
    )
    .await;
    assert!(message.contains("NaN"), "{message}");
    let response = post(
        &app,
        r#"{"alarm_type":"notice","value":"NaN","value":85,"alarm_type":"Flow"}"#,
    )
    .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let rows = app.query("SELECT kind, value, body FROM alarms");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][0], "flow");
    assert_eq!(rows[0][1], 85.0);
    assert_eq!(rows[0][2], r#"{"alarm_type":"Flow","value":85}"#);
    // Accepted probes that cannot act, to show acceptance is not refusal in disguise.
    assert_eq!(post(&app, HARMLESS).await.status(), StatusCode::ACCEPTED);
    assert_unharmed(&app).await;
    app.stop().await;
}
