//! The webhook body: tolerant parsing of whatever CloudAMQP posts into one [`Alarm`].
//!
//! CloudAMQP documents no schema for webhook bodies, so the parser accepts every shape
//! the contract lists (`alarm_type`/`type`, `instance_id`/`instance`, numbers as strings,
//! `resolved` at the top or under `metadata`) and ignores unknown fields. What it refuses
//! is a body nobody could act on safely; each refusal is an [`AlarmError`] whose message
//! is fit to send back to the caller.

use serde_json::{Map, Value};

use crate::instance::InstanceRef;
use crate::redact::redact_text;

/// Bodies nested deeper than this are refused (the contract's limit).
pub const MAX_DEPTH: usize = 64;

/// One alarm, normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct Alarm {
    /// The alarm type, lower-cased (`memory`, `cpu`, …). Unknown types are kept: they are
    /// recorded and skipped with `no_matching_rule`, never refused.
    pub kind: String,
    /// The measured value, when the alarm carries one.
    pub value: Option<f64>,
    /// The instance the alarm is about, when the alarm names one.
    pub instance: Option<InstanceRef>,
    /// A resolve notification: recorded, never acted on.
    pub resolved: bool,
    /// Free text, kept for the audit record.
    pub message: Option<String>,
    /// When CloudAMQP says the alarm fired, as sent.
    pub triggered_at: Option<String>,
}

/// Why a body is not an alarm (answered with `400`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlarmError {
    #[error("the body is not valid UTF-8")]
    NotUtf8,
    #[error("the body is not valid JSON: {0}")]
    NotJson(String),
    #[error("the body is nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("the body must be a JSON object, not {0}")]
    NotAnObject(&'static str),
    #[error("the alarm has no type: send a non-empty string in \"alarm_type\" (or \"type\")")]
    MissingType,
    #[error("\"value\" must be a finite number or a numeric string, not {0}")]
    BadValue(String),
    #[error("the instance id must be an integer, a numeric string or a UUID, not {0}")]
    BadInstance(String),
    #[error("\"resolved\" must be true or false, not {0}")]
    BadResolved(String),
}

/// Parses a webhook body (any Content-Type) into an [`Alarm`].
pub fn parse(body: &[u8]) -> Result<Alarm, AlarmError> {
    parse_with_json(body).map(|(alarm, _)| alarm)
}

/// [`parse`], also returning the body as JSON (for the audit journal).
pub fn parse_with_json(body: &[u8]) -> Result<(Alarm, Value), AlarmError> {
    let text = std::str::from_utf8(body).map_err(|_| AlarmError::NotUtf8)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let value: Value = serde_json::from_str(text).map_err(|e| {
        if e.to_string().contains("recursion limit") {
            AlarmError::TooDeep
        } else {
            AlarmError::NotJson(e.to_string())
        }
    })?;
    if depth(&value) > MAX_DEPTH {
        return Err(AlarmError::TooDeep);
    }
    let Value::Object(object) = &value else {
        return Err(AlarmError::NotAnObject(type_name(&value)));
    };
    let alarm = from_object(object)?;
    Ok((alarm, value))
}

fn from_object(object: &Map<String, Value>) -> Result<Alarm, AlarmError> {
    // Text kept from the body is redacted as the journaled body is: a credential in a URL
    // must not reach the state directory, the logs or the metrics through these fields.
    let kind = match field(object, &["alarm_type", "type"]) {
        Some(Value::String(kind)) if !kind.trim().is_empty() => {
            redact_text(kind).trim().to_lowercase()
        }
        _ => return Err(AlarmError::MissingType),
    };
    let value = field(object, &["value"]).map(number).transpose()?;
    let instance = field(object, &["instance_id", "instance"])
        .map(instance)
        .transpose()?;
    let nested_resolved = object
        .get("metadata")
        .and_then(Value::as_object)
        .and_then(|metadata| field(metadata, &["resolved"]));
    let resolved = match (field(object, &["resolved"]), nested_resolved) {
        (None, None) => false,
        (top, nested) => {
            let mut resolved = false;
            for flag in [top, nested].into_iter().flatten() {
                resolved |= flag
                    .as_bool()
                    .ok_or_else(|| AlarmError::BadResolved(describe(flag)))?;
            }
            resolved
        }
    };
    let text = |name: &str| {
        field(object, &[name])
            .and_then(Value::as_str)
            .map(redact_text)
    };
    Ok(Alarm {
        kind,
        value,
        instance,
        resolved,
        message: text("message"),
        triggered_at: text("triggered_at"),
    })
}

/// The first of `names` that is present and not `null` (a `null` field counts as absent).
fn field<'a>(object: &'a Map<String, Value>, names: &[&str]) -> Option<&'a Value> {
    names
        .iter()
        .find_map(|name| object.get(*name).filter(|v| !v.is_null()))
}

fn number(value: &Value) -> Result<f64, AlarmError> {
    let parsed = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    parsed
        .filter(|v| v.is_finite())
        .ok_or_else(|| AlarmError::BadValue(describe(value)))
}

fn instance(value: &Value) -> Result<InstanceRef, AlarmError> {
    let parsed = match value {
        Value::Number(n) => n
            .as_u64()
            .filter(|id| *id <= crate::instance::MAX_INSTANCE_ID)
            .map(InstanceRef::Id),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| AlarmError::BadInstance(describe(value)))
}

/// A short description of a JSON value for an error message (bounded, whatever was sent).
fn describe(value: &Value) -> String {
    const MAX: usize = 40;
    match value {
        Value::String(s) if s.chars().count() > MAX => {
            format!("the string {:?}…", s.chars().take(MAX).collect::<String>())
        }
        Value::String(s) => format!("the string {s:?}"),
        Value::Number(n) => format!("the number {n}"),
        other => type_name(other).to_owned(),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Nesting depth of a JSON value (a scalar is 0, `{}` is 1), without recursion.
fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((value, level)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(fields) => Box::new(fields.values()),
            _ => continue,
        };
        deepest = deepest.max(level + 1);
        stack.extend(children.map(|child| (child, level + 1)));
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_kept_text_are_redacted() {
        let alarm = parse(
            br#"{"type":"CPU://u:p@h","message":"down: amqps://user:pw@x/vh","triggered_at":"a://b@c"}"#,
        )
        .unwrap();
        assert_eq!(alarm.kind, "cpu://[redacted]@h");
        assert_eq!(
            alarm.message.as_deref(),
            Some("down: amqps://[redacted]@x/vh")
        );
        assert_eq!(alarm.triggered_at.as_deref(), Some("a://[redacted]@c"));
    }

    #[test]
    fn depth_counts_containers() {
        assert_eq!(depth(&serde_json::json!(1)), 0);
        assert_eq!(depth(&serde_json::json!({})), 1);
        assert_eq!(depth(&serde_json::json!({"a": [[1]]})), 3);
    }

    #[test]
    fn nesting_at_the_limit_is_accepted_and_beyond_refused() {
        let nested = |levels: usize| {
            let inner = "[".repeat(levels - 1) + &"]".repeat(levels - 1);
            format!("{{\"type\":\"cpu\",\"x\":{inner}}}")
        };
        assert!(parse(nested(MAX_DEPTH).as_bytes()).is_ok());
        assert_eq!(
            parse(nested(MAX_DEPTH + 1).as_bytes()),
            Err(AlarmError::TooDeep)
        );
        assert_eq!(parse(nested(500).as_bytes()), Err(AlarmError::TooDeep));
    }
}
