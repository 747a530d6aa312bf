//! Wiring only: parse the command line, run it, exit with its code.

use std::process::ExitCode;

use clap::Parser;
use cloudamqp_autoscaler::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Unlocked handles: `serve` runs for days while other threads log to stderr, and a
    // lock held here for the whole run would stop every one of them.
    cli::run(cli, &mut std::io::stdout(), &mut std::io::stderr())
}
