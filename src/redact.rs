//! Credentials out of what we keep: alarm bodies are journaled for audit, and CloudAMQP's
//! payloads are undocumented, so anything that looks like a credential is replaced before
//! it reaches the disk.

use serde_json::Value;

/// Field names whose values are never kept (compared case-insensitively, exactly).
const SECRET_FIELDS: &[&str] = &["url", "urls", "authorization"];
/// Field names that contain one of these (case-insensitively, ignoring `_` and `-`) are never
/// kept either: `apikey`, `api_key`, `api-key`, `access_token`, `client_secret`,
/// `db_password`, …
const SECRET_PARTS: &[&str] = &[
    "apikey",
    "password",
    "passwd",
    "secret",
    "token",
    "credential",
];

/// Whether a field of this name holds a credential.
fn is_secret_field(name: &str) -> bool {
    if SECRET_FIELDS.iter().any(|s| name.eq_ignore_ascii_case(s)) {
        return true;
    }
    // Every field of every alarm passes here: short ASCII names are folded on the stack.
    let mut buffer = [0u8; 64];
    if name.is_ascii() && name.len() <= buffer.len() {
        let mut len = 0;
        for byte in name.bytes().filter(|b| !matches!(b, b'_' | b'-')) {
            buffer[len] = byte.to_ascii_lowercase();
            len += 1;
        }
        let folded = &buffer[..len];
        return SECRET_PARTS.iter().any(|part| {
            folded
                .windows(part.len())
                .any(|window| window == part.as_bytes())
        });
    }
    has_secret_part(name)
}

/// Whether `name`, lowercased and without `_` and `-`, contains one of [`SECRET_PARTS`].
fn has_secret_part(name: &str) -> bool {
    let folded: String = name
        .chars()
        .filter(|c| !matches!(c, '_' | '-'))
        .flat_map(char::to_lowercase)
        .collect();
    SECRET_PARTS.iter().any(|part| folded.contains(part))
}

/// What a redacted value becomes.
pub const REDACTED: &str = "[redacted]";

/// The JSON text of `value` with every credential-like field replaced, and any
/// `scheme://user:password@host` in strings reduced to `scheme://[redacted]@host`.
pub fn redact_json(mut value: Value) -> String {
    redact(&mut value);
    // `to_string` writes straight into a buffer (`Display` goes through a formatter).
    serde_json::to_string(&value).expect("a Value, whose keys are strings, always serialises")
}

fn redact(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            for (name, field) in fields.iter_mut() {
                if is_secret_field(name) {
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

/// Free text (an alarm's message or type) with the user information of every URL in it
/// replaced, as in [`redact_json`].
pub fn redact_text(text: &str) -> String {
    strip_userinfo(text).unwrap_or_else(|| text.to_owned())
}

/// `amqps://user:pass@host/vhost` → `amqps://[redacted]@host/vhost`, for every URL in the
/// text; `None` when there is no user information to strip.
fn strip_userinfo(text: &str) -> Option<String> {
    if !text.contains("://") {
        return None;
    }
    let mut clean = String::with_capacity(text.len());
    let mut rest = text;
    let mut stripped = false;
    while let Some(found) = rest.find("://") {
        let (scheme, after) = rest.split_at(found + 3);
        clean.push_str(scheme);
        // The authority ends at the path, query or fragment, at the latest where the next
        // URL begins.
        let next_url = after.find("://").unwrap_or(after.len());
        let authority_end = after[..next_url].find(['/', '?', '#']).unwrap_or(next_url);
        rest = match after[..authority_end].rfind('@') {
            Some(at) => {
                clean.push_str(REDACTED);
                stripped = true;
                &after[at..]
            }
            None => after,
        };
    }
    clean.push_str(rest);
    stripped.then_some(clean)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn credential_like_names_are_recognised() {
        for name in [
            "url",
            "URLS",
            "apikey",
            "api_key",
            "Api-Key",
            "access_token",
            "client_secret",
            "db_password",
            "Authorization",
            "credentials",
            "X-Auth-Token",
            "to\u{212a}en",
            "ClientSecretWithAVeryLongNameThatDoesNotFitTheStackBufferOfSixtyFourBytes",
        ] {
            assert!(is_secret_field(name), "{name}");
        }
        for name in [
            "alarm_type",
            "value",
            "message",
            "instance_id",
            "urlencoded_note",
            "tokens_used_percent",
            "a_field_whose_name_is_far_longer_than_sixty_four_bytes_but_harmless",
            "tö_ken",
        ] {
            let expected = name.contains("token");
            assert_eq!(is_secret_field(name), expected, "{name}");
        }
    }

    proptest::proptest! {
        /// The folding on the stack says what the general one says.
        #[test]
        fn short_ascii_names_are_judged_as_any_other(name in "(Api|KEY|to|Ken|pass|wd|WORD|sec|Ret|cred|ential|_|-|[a-zA-Z]){0,24}|.{0,8}") {
            proptest::prop_assert_eq!(
                is_secret_field(&name),
                SECRET_FIELDS.iter().any(|s| name.eq_ignore_ascii_case(s)) || has_secret_part(&name)
            );
        }
    }

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
        let text = redact_json(body);
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

    #[test]
    fn every_url_in_a_text_loses_its_user_information() {
        assert_eq!(
            redact_text("old amqps://a:pw1@h1/v, new amqps://b:pw2@h2/v and amqp://c:pw3@h3"),
            "old amqps://[redacted]@h1/v, new amqps://[redacted]@h2/v and amqp://[redacted]@h3"
        );
        assert_eq!(
            redact_text("amqps://h1 then amqps://u:pw@h2"),
            "amqps://h1 then amqps://[redacted]@h2"
        );
        assert_eq!(redact_text("no url, a@b"), "no url, a@b");
        assert_eq!(redact_text("amqps://h/p?q=a@b"), "amqps://h/p?q=a@b");
    }
}
