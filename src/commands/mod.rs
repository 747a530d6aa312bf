//! The one-shot commands: each reads its inputs, calls the library, and prints.

pub mod check;
pub mod explain;
pub mod plans;
pub mod serve;

use std::path::{Path, PathBuf};

use crate::cli::CommandError;
use crate::rules::{RuleSet, RulesFailure};
use crate::settings::Settings;

/// The rules file a command uses: `--rules`, else the `rules.path` setting. A `--config`
/// given is read and checked even when `--rules` makes it unnecessary: a mistyped path or
/// a bad value in it must not pass unnoticed.
pub(crate) fn rules_path(
    config: Option<&Path>,
    rules: Option<PathBuf>,
) -> Result<PathBuf, CommandError> {
    match rules {
        Some(path) => {
            if config.is_some() {
                Settings::load(config)?;
            }
            Ok(path)
        }
        None => Ok(Settings::load(config)?.rules.path),
    }
}

/// Loads a rules file; an unreadable file is a setup error (exit 2), an invalid one is
/// invalid (exit 1) with every problem in the message.
pub(crate) fn load_rules(path: &Path) -> Result<RuleSet, CommandError> {
    RuleSet::load(path).map_err(|failure| match failure {
        RulesFailure::Io { .. } => CommandError::Setup(failure.to_string()),
        RulesFailure::Invalid { .. } => CommandError::Invalid(failure.to_string()),
    })
}
