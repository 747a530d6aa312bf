//! The one-shot commands: each reads its inputs, calls the library, and prints.

pub mod check;
mod check_guard;
mod daemon_client;
pub mod explain;
mod explain_down;
pub mod history;
pub mod notify;
pub mod pause;
pub mod plans;
pub mod resume;
pub mod serve;
pub mod setup;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::ValueEnum;

use crate::rules::{RuleSet, RulesFailure};
use crate::settings::Settings;

/// How a command prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// A command's failure, mapped onto the contract's exit codes.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The thing checked is invalid, or the action failed: exit 1.
    #[error("{0}")]
    Invalid(String),
    /// Usage, configuration or I/O: exit 2.
    #[error("{0}")]
    Setup(String),
}

impl CommandError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Invalid(_) => ExitCode::from(1),
            Self::Setup(_) => ExitCode::from(2),
        }
    }
}

impl From<crate::cloudamqp::ApiError> for CommandError {
    /// Talking to CloudAMQP failing (no key, refused key, unreachable) is a configuration
    /// or I/O problem: exit 2. Nothing that was checked was found invalid.
    fn from(e: crate::cloudamqp::ApiError) -> Self {
        Self::Setup(format!("CloudAMQP API: {e}"))
    }
}

impl From<crate::settings::SettingsError> for CommandError {
    fn from(e: crate::settings::SettingsError) -> Self {
        Self::Setup(e.to_string())
    }
}

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
