//! Durations as users write them: `"200ms"`, `"15s"`, `"30m"`, `"1h 30m"`.

use std::time::Duration;

use jiff::SignedDuration;

/// Parses a human duration (jiff's friendly format, or ISO 8601 such as `PT15S`).
///
/// Negative durations are refused: every duration we take is a length of time to wait.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text_trimmed = text.trim();
    let not_one = || {
        format!(
            "{text:?} is not a duration; write it like \"200ms\", \"15s\", \"30m\", \"1h 30m\" or \"90d\""
        )
    };
    let signed: SignedDuration = match text_trimmed.parse() {
        Ok(signed) => signed,
        // Days and weeks: a `Span`, with days of 24 hours (a retention or a cooldown is
        // an amount of time, not a calendar date).
        Err(_) => {
            let span: jiff::Span = text_trimmed.parse().map_err(|_| not_one())?;
            span.to_duration(jiff::SpanRelativeTo::days_are_24_hours())
                .map_err(|_| not_one())?
        }
    };
    Duration::try_from(signed)
        .map_err(|_| format!("{text:?} is negative; a duration must be zero or more"))
}

/// Prints a duration the way users write it (`15s`, `1h 30m`).
pub fn display(duration: Duration) -> String {
    match SignedDuration::try_from(duration) {
        Ok(signed) => format!("{signed:#}"),
        Err(_) => format!("{}s", duration.as_secs()),
    }
}

/// Serde support for `Duration` fields written as human durations.
pub mod serde_human {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse(&text).map_err(serde::de::Error::custom)
    }

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::display(*duration))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_users_write() {
        assert_eq!(parse("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("PT15S"), Ok(Duration::from_secs(15)));
        assert_eq!(parse("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(parse("2w"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse("1d 12h"), Ok(Duration::from_secs(36 * 3600)));
        assert!(parse("1mo").is_err(), "a month has no fixed length");
        assert!(parse("soon").is_err());
        assert!(parse("15").is_err());
        assert!(parse("-5m").is_err());
    }

    #[test]
    fn displays_friendly() {
        assert_eq!(display(Duration::from_secs(5400)), "1h 30m");
        assert_eq!(display(Duration::from_millis(200)), "200ms");
    }
}
