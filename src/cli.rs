//! The command line: the list of commands. Each `commands/<name>.rs` owns its arguments and
//! its `run`; this file only names them and maps their errors onto exit codes.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands::{self, check, explain, history, notify, pause, plans, resume, serve, setup};

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
    Serve(serve::ServeArgs),
    /// Validate the rules file and summarise it; every problem is reported at once.
    Check(check::CheckArgs),
    /// Pure what-if: the decision for one alarm on an instance on PLAN (or, with --down, what
    /// one scale-down look decides). No network, no state.
    Explain(Box<explain::ExplainArgs>),
    /// List the broker plans of the live CloudAMQP catalogue (needs the API key).
    Plans(plans::PlansArgs),
    /// Hold plan changes back for a while, through the running daemon's admin API (needs
    /// server.admin_token).
    Pause(pause::PauseArgs),
    /// End a pause (or, without an id, every pause in force) through the running daemon.
    Resume(resume::ResumeArgs),
    /// Notification sinks: `notify test` sends each configured sink a test event.
    Notify(notify::NotifyArgs),
    /// What happened, newest first: alarms, decisions and changes, read from the state
    /// store (read-only; works while a daemon runs and when it is stopped).
    History(history::HistoryArgs),
    /// Create or update the webhook recipient and the alarms the rules act on in CloudAMQP
    /// (prints the plan; writes only with --apply).
    Setup(setup::SetupArgs),
}

/// Runs a parsed command line, printing to `out` and `err`.
pub fn run(cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> ExitCode {
    let result = match cli.command {
        Command::Serve(args) => commands::serve::run(cli.config.as_deref(), args, out),
        Command::Check(args) => commands::check::run(cli.config.as_deref(), args, out, err),
        Command::Explain(args) => commands::explain::run(
            cli.config.as_deref(),
            *args,
            &mut std::io::stdin().lock(),
            out,
        ),
        Command::Plans(args) => commands::plans::run(cli.config.as_deref(), args, out),
        Command::Pause(args) => commands::pause::run(cli.config.as_deref(), args, out),
        Command::Resume(args) => commands::resume::run(cli.config.as_deref(), args, out),
        Command::Notify(args) => commands::notify::run(cli.config.as_deref(), args, out),
        Command::History(args) => commands::history::run(cli.config.as_deref(), args, out),
        Command::Setup(args) => commands::setup::run(cli.config.as_deref(), args, out),
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
