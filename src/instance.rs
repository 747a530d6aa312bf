//! How an instance is named: CloudAMQP's integer id, or its UUID (`providerid`).

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// An instance as an alarm, a setting or a command names it.
///
/// Every API path takes the integer id; a UUID is the instance's `providerid` and is
/// mapped to the id through `GET /api/instances`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InstanceRef {
    /// The integer id every API path takes.
    Id(u64),
    /// The instance's `providerid`.
    Uuid(Uuid),
}

/// The largest instance id taken: ids are stored as SQLite integers (signed 64-bit), and
/// CloudAMQP's are far smaller. A larger one is refused where it is read, not where it is
/// stored.
pub const MAX_INSTANCE_ID: u64 = i64::MAX as u64;

/// The text is neither an integer id nor a UUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is neither an integer instance id (at most 9223372036854775807) nor a UUID")]
pub struct InvalidInstanceRef(pub String);

impl FromStr for InstanceRef {
    type Err = InvalidInstanceRef;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        if !trimmed.is_empty()
            && trimmed.bytes().all(|b| b.is_ascii_digit())
            && let Ok(id) = trimmed.parse::<u64>()
            && id <= MAX_INSTANCE_ID
        {
            return Ok(Self::Id(id));
        }
        // Only the hyphenated form CloudAMQP prints; `Uuid::parse_str` would also take
        // braces, URNs and bare hex, which no CloudAMQP payload uses.
        if trimmed.len() == 36
            && let Ok(uuid) = Uuid::try_parse(trimmed)
        {
            return Ok(Self::Uuid(uuid));
        }
        Err(InvalidInstanceRef(text.to_owned()))
    }
}

impl fmt::Display for InstanceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => write!(f, "{id}"),
            Self::Uuid(uuid) => write!(f, "{}", uuid.hyphenated()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An id the store could not hold is refused when read, with the limit in the message.
    #[test]
    fn ids_past_the_store_s_integers_are_refused() {
        assert_eq!(
            "9223372036854775807".parse(),
            Ok(InstanceRef::Id(MAX_INSTANCE_ID))
        );
        let err = "9223372036854775808".parse::<InstanceRef>().unwrap_err();
        assert!(
            err.to_string().contains("at most 9223372036854775807"),
            "{err}"
        );
        let body = br#"{"alarm_type":"cpu","instance_id":9223372036854775808}"#;
        assert!(crate::alarm::parse(body).is_err());
        let body = br#"{"alarm_type":"cpu","instance_id":9223372036854775807}"#;
        assert_eq!(
            crate::alarm::parse(body).unwrap().instance,
            Some(InstanceRef::Id(MAX_INSTANCE_ID))
        );
    }

    #[test]
    fn parses_ids_and_uuids_only() {
        assert_eq!("359559".parse(), Ok(InstanceRef::Id(359_559)));
        assert_eq!(" 42 ".parse(), Ok(InstanceRef::Id(42)));
        let uuid = "4e683759-5eb9-41b3-8794-26f751de5699";
        assert_eq!(
            uuid.parse::<InstanceRef>().unwrap().to_string(),
            uuid.to_owned()
        );
        for bad in [
            "",
            "-1",
            "1.5",
            "prod",
            "99999999999999999999999",
            "{4e683759-5eb9-41b3-8794-26f751de5699}",
        ] {
            assert!(bad.parse::<InstanceRef>().is_err(), "{bad:?} accepted");
        }
    }
}
