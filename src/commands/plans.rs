//! `plans`: the broker plans of the live catalogue.

use std::io::Write;
use std::path::Path;

use super::{CommandError, Format};
use crate::clock::SystemClock;
use crate::cloudamqp::{self, Plan};
use crate::settings::Settings;

#[derive(Debug, clap::Args)]
pub struct PlansArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Runs `plans`.
pub fn run(
    config: Option<&Path>,
    args: PlansArgs,
    out: &mut dyn Write,
) -> Result<(), CommandError> {
    let settings = Settings::load(config)?;
    let plans = fetch_plans(&settings)?;
    let text = match args.format {
        Format::Text => cloudamqp::format_plans_text(&plans),
        Format::Json => cloudamqp::format_plans_json(&plans) + "\n",
    };
    out.write_all(text.as_bytes())
        .map_err(|e| CommandError::Setup(format!("cannot write output: {e}")))
}

/// The live catalogue's broker plans, for the one-shot commands.
pub(crate) fn fetch_plans(settings: &Settings) -> Result<Vec<Plan>, CommandError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CommandError::Setup(format!("cannot start the async runtime: {e}")))?;
    Ok(runtime.block_on(cloudamqp::plans_report(
        &settings.cloudamqp,
        SystemClock::shared(),
    ))?)
}
