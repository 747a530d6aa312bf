//! `history`: what happened, newest first, read from the state store named by the settings
//! (`state.dir`, or `state.database_url`), read-only: it works while a daemon runs and
//! after it stopped.

use std::io::Write;
use std::path::Path;

use jiff::Timestamp;

use super::{CommandError, Format};
use crate::settings::Settings;
use crate::store::read::{DEFAULT_HISTORY_LIMIT, MAX_HISTORY_LIMIT};
use crate::store::{HistoryEvent, HistoryQuery, HistorySource, StoreError};

#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Only this instance's events (its integer id).
    #[arg(long, value_name = "ID")]
    pub instance: Option<u64>,
    /// Only events at or after T: an RFC 3339 time (2026-11-26T17:00:00Z), or a duration
    /// meaning that long ago ("24h", "7d", "90m").
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// At most N events, the newest (1 to 1000).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_HISTORY_LIMIT as u64,
          value_parser = clap::value_parser!(u64).range(1..=MAX_HISTORY_LIMIT as u64))]
    pub limit: u64,
    /// Output format: a timeline, or `/history`'s JSON.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Runs `history`.
pub fn run(
    config: Option<&Path>,
    args: HistoryArgs,
    out: &mut dyn Write,
) -> Result<(), CommandError> {
    let settings = Settings::load(config)?;
    let query = HistoryQuery {
        instance: args.instance,
        since: args
            .since
            .as_deref()
            .map(|t| parse_since(t, Timestamp::now()))
            .transpose()
            .map_err(CommandError::Setup)?,
        limit: usize::try_from(args.limit).unwrap_or(MAX_HISTORY_LIMIT),
    };
    let source = HistorySource::of(&settings.state)
        .map_err(|e: StoreError| CommandError::Setup(e.to_string()))?;
    let events = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CommandError::Setup(format!("cannot start the runtime: {e}")))?
        .block_on(source.history(query))
        // A missing store, one too new, or a read failing: all exit 2.
        .map_err(|e: StoreError| CommandError::Setup(e.to_string()))?;
    let text = match args.format {
        Format::Json => crate::server::history::events_json(&events).to_string() + "\n",
        Format::Text => timeline(&events),
    };
    out.write_all(text.as_bytes())
        .map_err(|e| CommandError::Setup(format!("cannot write output: {e}")))
}

/// `--since`: an RFC 3339 time, or a duration meaning that long before `now`.
pub fn parse_since(text: &str, now: Timestamp) -> Result<Timestamp, String> {
    let text = text.trim();
    if let Ok(at) = text.parse::<Timestamp>() {
        return Ok(at);
    }
    // Whole days ("7d") too: a day is 24 h here, as in `state.retention`.
    let days = text
        .strip_suffix('d')
        .and_then(|n| n.trim().parse::<u64>().ok());
    let ago = match days {
        Some(days) => Ok(std::time::Duration::from_secs(days.saturating_mul(86_400))),
        None => crate::duration::parse(text),
    }
    .map_err(|_| {
        format!(
            "--since {text:?} is neither an RFC 3339 time (2026-11-26T17:00:00Z) nor a \
             duration (\"24h\", \"7d\")"
        )
    })?;
    jiff::SignedDuration::try_from(ago)
        .ok()
        .and_then(|ago| now.checked_sub(ago).ok())
        .ok_or_else(|| format!("--since {text:?} reaches before the year -9999"))
}

/// One event a line, newest first: time, instance, what happened, why.
pub fn timeline(events: &[HistoryEvent]) -> String {
    if events.is_empty() {
        return "no events\n".to_owned();
    }
    let instances: Vec<String> = events.iter().map(HistoryEvent::instance_label).collect();
    let whats: Vec<String> = events.iter().map(HistoryEvent::what).collect();
    let instance_width = instances
        .iter()
        .map(|i| i.chars().count())
        .max()
        .unwrap_or(0);
    let what_width = whats.iter().map(|w| w.chars().count()).max().unwrap_or(0);
    let mut text = String::new();
    for ((event, instance), what) in events.iter().zip(&instances).zip(&whats) {
        let line = match event.why() {
            Some(why) => format!(
                "{:.0}  {instance:<instance_width$}  {what:<what_width$}  {why}",
                event.at
            ),
            None => format!("{:.0}  {instance:<instance_width$}  {what}", event.at),
        };
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_a_time_or_a_duration_ago() {
        let now: Timestamp = "2026-11-26T17:00:00Z".parse().unwrap();
        assert_eq!(
            parse_since("2026-11-25T00:00:00+01:00", now).unwrap(),
            "2026-11-24T23:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(
            parse_since("24h", now).unwrap(),
            "2026-11-25T17:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(
            parse_since("7d", now).unwrap(),
            "2026-11-19T17:00:00Z".parse::<Timestamp>().unwrap()
        );
        let err = parse_since("yesterday", now).unwrap_err();
        assert!(err.contains("RFC 3339"), "{err}");
    }
}
