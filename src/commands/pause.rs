//! `pause`: holds plan changes back for a while, through a running daemon's admin API
//! (`POST /pause`).

use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};

use super::daemon_client::DaemonClient;
use super::{CommandError, Format};

#[derive(Debug, clap::Args)]
pub struct PauseArgs {
    /// How long the pause lasts, e.g. "2h" or "30m".
    #[arg(long = "for", value_name = "DURATION", value_parser = positive_duration,
          required_unless_present = "until", conflicts_with = "until")]
    pub for_: Option<String>,
    /// Until when the pause lasts (RFC 3339, e.g. 2026-11-26T19:00:00Z), instead of --for.
    #[arg(long, value_name = "RFC3339")]
    pub until: Option<jiff::Timestamp>,
    /// Which changes it holds back.
    #[arg(long, value_name = "DIRECTION", default_value = "both",
          value_parser = ["up", "down", "both"])]
    pub direction: String,
    /// An instance selector (id, UUID or name; `*` and `?` glob); repeat for several.
    /// Default: every instance.
    #[arg(long = "instance", value_name = "SEL")]
    pub instances: Vec<String>,
    /// Why (shown in /pauses and /status, logged).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// The daemon (default: http://<server.bind>).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

fn positive_duration(text: &str) -> Result<String, String> {
    match crate::duration::parse(text)? {
        length if length.is_zero() => Err("the pause must last longer than zero".into()),
        _ => Ok(text.to_owned()),
    }
}

/// The `POST /pause` body for `args`.
fn request_body(args: &PauseArgs) -> Value {
    let mut body = json!({ "direction": args.direction });
    if let Some(length) = &args.for_ {
        body["for"] = json!(length);
    }
    if let Some(until) = args.until {
        body["until"] = json!(until);
    }
    if !args.instances.is_empty() {
        body["instances"] = json!(args.instances);
    }
    if let Some(reason) = &args.reason {
        body["reason"] = json!(reason);
    }
    body
}

/// Runs `pause`.
pub fn run(
    config: Option<&Path>,
    args: PauseArgs,
    out: &mut dyn Write,
) -> Result<(), CommandError> {
    let client = DaemonClient::new(config, args.url.clone())?;
    let answer = client.send(reqwest::Method::POST, "/pause", Some(&request_body(&args)))?;
    if answer.status != 201 {
        return Err(answer.refused("the daemon refused the pause"));
    }
    let text = match args.format {
        Format::Json => format!("{}\n", answer.body),
        Format::Text => format!(
            "paused until {} (pause {}; `resume {}` ends it)\n",
            answer.body["until"].as_str().unwrap_or("?"),
            answer.body["pause_id"].as_str().unwrap_or("?"),
            answer.body["pause_id"].as_str().unwrap_or("?"),
        ),
    };
    out.write_all(text.as_bytes())
        .map_err(|e| CommandError::Setup(format!("cannot write output: {e}")))
}
