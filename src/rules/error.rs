//! Problems in a rules file, each pointing at a file, line, column and rule.

use std::fmt;
use std::path::PathBuf;

/// A place in a file, 1-based, columns counted in characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

impl Location {
    /// The location of byte `offset` in `text`.
    pub fn of_offset(file: &str, text: &str, offset: usize) -> Self {
        let before = &text[..floor_char_boundary(text, offset)];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Self {
            file: file.to_owned(),
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

fn floor_char_boundary(text: &str, offset: usize) -> usize {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// One problem in a rules file.
///
/// Displayed on one line, `rules.toml:12:5: rule "memory-high": <what is wrong and what to
/// do about it>`, the form `check`, the logs and `/status` all show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub location: Location,
    /// What the problem is in: `rule "memory-high"`, `ladder "single"`, `[defaults]`, …
    pub context: Option<String>,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.location)?;
        if let Some(context) = &self.context {
            write!(f, "{context}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Why a rules file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RulesFailure {
    /// The file could not be read: an I/O problem, not a problem of its content.
    #[error("cannot read rules file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file was read and is invalid; every problem found.
    #[error("{} has {} problem{}:\n{}", .file, .errors.len(), if .errors.len() == 1 { "" } else { "s" }, list(.errors))]
    Invalid {
        file: String,
        errors: Vec<RuleError>,
    },
}

fn list(errors: &[RuleError]) -> String {
    errors
        .iter()
        .map(|e| format!("  {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl RulesFailure {
    /// Each problem as one line, for `/status` and the logs.
    pub fn lines(&self) -> Vec<String> {
        match self {
            Self::Io { .. } => vec![self.to_string()],
            Self::Invalid { errors, .. } => errors.iter().map(ToString::to_string).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_lines_and_columns() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(Location::of_offset("f", text, 0).to_string(), "f:1:1");
        assert_eq!(Location::of_offset("f", text, 6).to_string(), "f:2:1");
        // Columns count characters, not bytes: "bé " is three characters.
        assert_eq!(Location::of_offset("f", text, 10).to_string(), "f:2:4");
        assert_eq!(Location::of_offset("f", text, 999).to_string(), "f:3:1");
    }
}
