//! Wiring only: parse the command line, run it, exit with its code.

use std::process::ExitCode;

use clap::Parser;
use cloudamqp_autoscaler::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::run(
        cli,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    )
}
