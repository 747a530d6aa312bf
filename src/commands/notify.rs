//! `notify test`: one `test` event to each configured sink, one attempt each.

use std::io::Write;
use std::path::Path;

use super::CommandError;
use crate::notify::{self, Event, Mode, Outcome};
use crate::settings::Settings;

#[derive(Debug, clap::Args)]
pub struct NotifyArgs {
    #[command(subcommand)]
    pub command: NotifyCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum NotifyCommand {
    /// Send one `test` event to each configured sink (one attempt, within notify.timeout);
    /// exits 1 if any sink did not take it.
    Test(TestArgs),
}

#[derive(Debug, clap::Args)]
pub struct TestArgs {}

/// Runs `notify <command>`.
pub fn run(
    config: Option<&Path>,
    args: NotifyArgs,
    out: &mut dyn Write,
) -> Result<(), CommandError> {
    match args.command {
        NotifyCommand::Test(_) => test(config, out),
    }
}

fn test(config: Option<&Path>, out: &mut dyn Write) -> Result<(), CommandError> {
    let settings = Settings::load(config)?;
    let sinks = notify::sinks(&settings.notify);
    if sinks.is_empty() {
        return Err(CommandError::Setup(
            "no notification sink is configured: set notify.webhook.url, notify.slack.url or \
             notify.pagerduty.routing_key (or their *_file or AUTOSCALER__NOTIFY__… variables)"
                .into(),
        ));
    }
    let names: Vec<&str> = sinks.iter().map(|sink| sink.name()).collect();
    let write_error = |e: std::io::Error| CommandError::Setup(format!("cannot write output: {e}"));
    writeln!(out, "configured sinks: {}", names.join(", ")).map_err(write_error)?;

    let client = notify::client(settings.notify.timeout).map_err(|e| {
        CommandError::Setup(format!("cannot build the HTTP client: {}", e.without_url()))
    })?;
    let event = Event::test(jiff::Timestamp::now(), Mode::from_live(settings.live));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CommandError::Setup(format!("cannot start the async runtime: {e}")))?;
    // The sinks at once, each its requests in order (PagerDuty: the trigger, then the
    // resolve), stopping at its first failure.
    let outcomes = runtime.block_on(futures_util::future::join_all(sinks.iter().map(|sink| {
        let client = &client;
        let requests = sink.requests(&event);
        async move {
            for prepared in &requests {
                let outcome = notify::send(client, prepared).await;
                if outcome != Outcome::Sent {
                    return outcome;
                }
            }
            Outcome::Sent
        }
    })));

    let mut failed = 0;
    for (sink, outcome) in sinks.iter().zip(&outcomes) {
        let line = match outcome {
            Outcome::Sent => "sent".to_owned(),
            Outcome::Refused { why } => format!("refused: {why}"),
            Outcome::Retry { why, .. } => format!("failed: {why} (the daemon would retry)"),
        };
        if *outcome != Outcome::Sent {
            failed += 1;
        }
        writeln!(out, "{}: {line}", sink.name()).map_err(write_error)?;
    }
    if failed > 0 {
        return Err(CommandError::Invalid(format!(
            "{failed} of {} sinks did not take the test event",
            sinks.len()
        )));
    }
    Ok(())
}
