//! Credentials out of what we keep: alarm bodies are journaled for audit, and CloudAMQP's
//! payloads are undocumented, so anything that looks like a credential is replaced before
//! it reaches the disk.

use serde_json::Value;

/// Field names whose values are never kept (compared case-insensitively).
const SECRET_FIELDS: &[&str] = &[
    "url",
    "urls",
    "apikey",
    "api_key",
    "password",
    "passwd",
    "secret",
    "token",
    "authorization",
];
/// What a redacted value becomes.
pub const REDACTED: &str = "[redacted]";

/// The JSON text of `value` with every credential-like field replaced, and any
/// `scheme://user:password@host` in strings reduced to `scheme://[redacted]@host`.
pub fn redact_json(value: &Value) -> String {
    let mut value = value.clone();
    redact(&mut value);
    value.to_string()
}

/// `text` with any `scheme://user:password@host` reduced to `scheme://[redacted]@host`, as
/// [`redact_json`] does to every string: for text kept outside the journaled body.
pub fn redact_text(text: &str) -> String {
    strip_userinfo(text).unwrap_or_else(|| text.to_owned())
}

fn redact(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            for (name, field) in fields.iter_mut() {
                if SECRET_FIELDS.iter().any(|s| name.eq_ignore_ascii_case(s)) {
                    *field = Value::String(REDACTED.to_owned());
                } else {
                    redact(field);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        Value::String(text) => {
            if let Some(clean) = strip_userinfo(text) {
                *text = clean;
            }
        }
        _ => {}
    }
}

/// `amqps://user:pass@host/vhost` → `amqps://[redacted]@host/vhost`; `None` when there is
/// no user information to strip.
fn strip_userinfo(text: &str) -> Option<String> {
    let scheme_end = text.find("://")? + 3;
    let rest = &text[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = rest[..authority_end].rfind('@')?;
    Some(format!("{}{REDACTED}{}", &text[..scheme_end], &rest[at..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn credentials_are_replaced_and_the_rest_kept() {
        let body = json!({
            "alarm_type": "memory",
            "value": 85,
            "URL": "amqps://u:p@host/v",
            "urls": {"external": "amqps://u:p@host/v"},
            "nested": [{"apikey": "k", "note": "see amqps://user:pw@x.cloudamqp.com/vh now"}],
            "message": "Memory 85%",
        });
        let text = redact_json(&body);
        assert!(
            !text.contains("u:p") && !text.contains("user:pw") && !text.contains("\"k\""),
            "{text}"
        );
        assert!(
            text.contains("\"message\":\"Memory 85%\"") && text.contains("\"value\":85"),
            "{text}"
        );
        assert!(
            text.contains("amqps://[redacted]@x.cloudamqp.com/vh now"),
            "{text}"
        );
    }
}
