//! The one-shot commands: each reads its inputs, calls the library, and prints.

pub mod check;
pub mod explain;
mod explain_down;
pub mod plans;
pub mod serve;

use std::path::{Path, PathBuf};

use crate::cli::CommandError;
use crate::rules::{RuleSet, RulesFailure};
use crate::settings::Settings;

/// The rules file a command uses: `--rules`, else the `rules.path` setting; with the
/// settings when they were read. A `--config` given is read and checked even when `--rules`
/// makes it unnecessary (a mistyped path or a bad value in it must not pass unnoticed), and
/// so are the settings whenever the command `needs_settings`.
pub(crate) fn rules_path(
    config: Option<&Path>,
    rules: Option<PathBuf>,
    needs_settings: bool,
) -> Result<(PathBuf, Option<Settings>), CommandError> {
    match rules {
        Some(path) => {
            let settings = (needs_settings || config.is_some())
                .then(|| Settings::load(config))
                .transpose()?;
            Ok((path, settings))
        }
        None => {
            let settings = Settings::load(config)?;
            Ok((settings.rules.path.clone(), Some(settings)))
        }
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
