//! The command line: `serve | check | explain | plans`, and their exit codes.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::commands;

/// Keeps a CloudAMQP cluster on the right plan: alarm webhook in, plan change out.
#[derive(Debug, Parser)]
#[command(
    name = "cloudamqp-autoscaler",
    version,
    about,
    propagate_version = true
)]
pub struct Cli {
    /// Settings file layered over the compiled-in defaults (then AUTOSCALER__* env vars).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: the webhook, decisions, plan changes (a dry run unless --live).
    Serve(ServeArgs),
    /// Validate the rules file and summarise it; every problem is reported at once.
    Check(CheckArgs),
    /// Pure what-if: the decision for one alarm on an instance on PLAN. No network, no state.
    Explain(ExplainArgs),
    /// List the broker plans of the live CloudAMQP catalogue (needs the API key).
    Plans(PlansArgs),
}

/// How a command prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The rules file (default: the `rules.path` setting, "rules.toml").
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// Also check every plan name against the live catalogue (needs the API key); warn on
    /// ladders that mix shared/dedicated plans or backends, or are not ascending by price.
    #[arg(long)]
    pub online: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The rules file (default: the `rules.path` setting, "rules.toml").
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// Act for real: send plan changes to CloudAMQP (same as `live = true`). Needs the API key.
    #[arg(long)]
    pub live: bool,
    /// Run live against a built-in simulated CloudAMQP (one instance on bunny-1), with
    /// the shipped rules and local state, and print how to send it an alarm.
    #[arg(long)]
    pub demo: bool,
}

#[derive(Debug, Args)]
pub struct PlansArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The plan the instance is on now, e.g. bunny-1.
    #[arg(long, value_name = "PLAN")]
    pub plan: String,
    /// The rules file (default: the `rules.path` setting, "rules.toml").
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// The alarm JSON as CloudAMQP posts it (default: read from stdin).
    #[arg(long, value_name = "FILE")]
    pub alarm: Option<PathBuf>,
    /// When the instance's last plan change finished (RFC 3339); default: never.
    #[arg(long, value_name = "RFC3339")]
    pub last_change: Option<jiff::Timestamp>,
    /// The time of the decision (RFC 3339); default: now.
    #[arg(long, value_name = "RFC3339")]
    pub now: Option<jiff::Timestamp>,
    /// The instance: integer id or UUID (default: the alarm's own instance id).
    #[arg(long, value_name = "ID")]
    pub instance: Option<crate::instance::InstanceRef>,
    /// The instance's name, for rules that select instances by name.
    #[arg(long, value_name = "NAME")]
    pub instance_name: Option<String>,
    /// Output format; json prints exactly one object.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Ask what one scale-down look decides instead (needs [scale_down] in the rules); the
    /// figures given stand for every look of the window. No alarm is read.
    #[arg(long, requires = "floor")]
    pub down: bool,
    /// With --down: the instance's floor (the plan before the daemon raised it).
    #[arg(long, value_name = "PLAN")]
    pub floor: Option<String>,
    /// With --down: when the last upward change finished (RFC 3339); default: never.
    #[arg(long, value_name = "RFC3339", requires = "down")]
    pub last_up: Option<jiff::Timestamp>,
    /// With --down: when the last downward change finished (RFC 3339); default: never.
    #[arg(long, value_name = "RFC3339", requires = "down")]
    pub last_down: Option<jiff::Timestamp>,
    /// With --down: when the last alarm for the instance was received (RFC 3339); default:
    /// never.
    #[arg(long, value_name = "RFC3339", requires = "down")]
    pub last_alarm: Option<jiff::Timestamp>,
    /// With --down: memory in use on the busiest node now, bytes or a size such as "1.2GiB";
    /// every node is taken to use as much. Without it the look has no metrics.
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes, requires = "down")]
    pub memory_used: Option<u64>,
    /// With --down: the smaller plan's per-node memory limit, as the daemon would have
    /// seen it (default: `memory_limits` of [scale_down], else unknown).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes, requires = "down")]
    pub memory_limit: Option<u64>,
    /// With --down: how many nodes the instance has now (default: the plan's -N suffix, else 1).
    #[arg(long, value_name = "N", requires = "down")]
    pub nodes: Option<u32>,
}

/// A byte count as written on the command line: `1073741824`, `1GiB`, `3.2 GiB`, `500MB`.
fn parse_bytes(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<bytesize::ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|e| format!("{text:?} is not a size in bytes: {e}"))
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

/// Runs a parsed command line, printing to `out` and `err`.
pub fn run(cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> ExitCode {
    let result = match cli.command {
        Command::Serve(args) => commands::serve::run(cli.config.as_deref(), args, out),
        Command::Check(args) => commands::check::run(cli.config.as_deref(), args, out, err),
        Command::Explain(args) => commands::explain::run(
            cli.config.as_deref(),
            args,
            &mut std::io::stdin().lock(),
            out,
        ),
        Command::Plans(args) => commands::plans::run(cli.config.as_deref(), args, out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Best effort: if stderr is gone there is nobody left to tell.
            let _ = writeln!(err, "error: {e}");
            e.exit_code()
        }
    }
}
