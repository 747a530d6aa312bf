//! `instances = [...]` selectors: an id, a UUID or a name, with `*` and `?` globs.

use std::fmt;

use wildmatch::WildMatch;

/// One entry of a rule's `instances` list.
#[derive(Clone)]
pub struct Selector {
    text: String,
    matcher: Matcher,
}

#[derive(Clone)]
enum Matcher {
    Any,
    Exact(String),
    Glob(WildMatch),
}

/// The names one instance answers to: its integer id, its UUID and its name, as known.
#[derive(Debug, Clone, Copy, Default)]
pub struct InstanceNames<'a> {
    pub id: Option<&'a str>,
    pub uuid: Option<&'a str>,
    pub name: Option<&'a str>,
}

/// Whether a list of selectors picks the instance with `names`: an empty list picks every
/// instance (rules, `[scale_down]`, schedules, pauses and `setup --instance` alike).
pub fn any_picks(selectors: &[Selector], names: &InstanceNames<'_>) -> bool {
    selectors.is_empty() || selectors.iter().any(|s| s.matches(names))
}

impl Selector {
    /// A selector from its text. UUIDs compare case-insensitively, so they are lower-cased.
    pub fn new(text: &str) -> Self {
        let normalised = if uuid::Uuid::try_parse(text).is_ok() {
            text.to_ascii_lowercase()
        } else {
            text.to_owned()
        };
        let matcher = if normalised == "*" {
            Matcher::Any
        } else if normalised.contains(['*', '?']) {
            Matcher::Glob(WildMatch::new(&normalised))
        } else {
            Matcher::Exact(normalised)
        };
        Self {
            text: text.to_owned(),
            matcher,
        }
    }

    /// Whether this selector picks the instance by any of its names.
    pub fn matches(&self, names: &InstanceNames<'_>) -> bool {
        let forms = [names.id, names.uuid, names.name];
        match &self.matcher {
            Matcher::Any => true,
            Matcher::Exact(wanted) => forms.into_iter().flatten().any(|form| form == wanted),
            Matcher::Glob(glob) => forms.into_iter().flatten().any(|form| glob.matches(form)),
        }
    }

    /// Whether this is `*`, which picks every instance whatever its names.
    pub fn is_any(&self) -> bool {
        matches!(self.matcher, Matcher::Any)
    }

    /// The selector as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Selector({:?})", self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "4e683759-5eb9-41b3-8794-26f751de5699";

    fn prod() -> InstanceNames<'static> {
        InstanceNames {
            id: Some("359559"),
            uuid: Some(UUID),
            name: Some("prod-eu"),
        }
    }

    #[test]
    fn matches_any_of_the_three_forms() {
        for text in [
            "*",
            "359559",
            UUID,
            "4E683759-5EB9-41B3-8794-26F751DE5699",
            "prod-eu",
            "prod-*",
            "3595?9",
            "4e68*",
        ] {
            assert!(Selector::new(text).matches(&prod()), "{text}");
        }
        for text in ["35955", "prod", "staging-*", "?"] {
            assert!(!Selector::new(text).matches(&prod()), "{text}");
        }
    }

    #[test]
    fn unknown_forms_never_match_except_star() {
        let only_id = InstanceNames {
            id: Some("1"),
            ..InstanceNames::default()
        };
        assert!(Selector::new("*").matches(&only_id));
        assert!(!Selector::new("prod-*").matches(&only_id));
    }
}
