//! Wiring only: parse the command line, run it, exit with its code.

use std::process::ExitCode;

use clap::Parser;
use cloudamqp_autoscaler::cli::{self, Cli};

/// mimalloc instead of glibc's malloc: glibc trims its per-thread arenas with `madvise`,
/// and under webhook load the resulting TLB shootdowns and page faults cost a third of
/// the store writer's time (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Unlocked handles: `serve` runs for days while other threads log to stderr, and a
    // lock held here for the whole run would stop every one of them.
    cli::run(cli, &mut std::io::stdout(), &mut std::io::stderr())
}
