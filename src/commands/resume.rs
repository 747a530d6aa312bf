//! `resume`: ends one pause, or every pause in force, through a running daemon's admin
//! API (`DELETE /pause/{id}`; without an id, `GET /pauses` and a DELETE for each).

use std::io::Write;
use std::path::Path;

use serde_json::json;

use super::daemon_client::DaemonClient;
use super::{CommandError, Format};

#[derive(Debug, clap::Args)]
pub struct ResumeArgs {
    /// The pause to end (as `pause` printed it); without it, every pause in force.
    #[arg(value_name = "PAUSE_ID")]
    pub pause_id: Option<String>,
    /// The daemon (default: http://<server.bind>).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Runs `resume`.
pub fn run(
    config: Option<&Path>,
    args: ResumeArgs,
    out: &mut dyn Write,
) -> Result<(), CommandError> {
    let client = DaemonClient::new(config, args.url.clone())?;
    let ended = match &args.pause_id {
        Some(id) => {
            let answer = end(&client, id)?;
            if answer == Ended::NotInForce {
                return Err(CommandError::Invalid(format!(
                    "no pause {id:?} is in force (unknown, ended or expired)"
                )));
            }
            vec![id.clone()]
        }
        None => {
            let answer = client.send(reqwest::Method::GET, "/pauses", None)?;
            if answer.status != 200 {
                return Err(answer.refused("the daemon did not list its pauses"));
            }
            let ids: Vec<String> = answer.body["pauses"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["pause_id"].as_str().map(str::to_owned))
                .collect();
            let mut ended = Vec::new();
            for id in ids {
                // One that expired or was ended meanwhile is not in force: nothing to do.
                if end(&client, &id)? == Ended::Ended {
                    ended.push(id);
                }
            }
            ended
        }
    };
    let text = match args.format {
        Format::Json => format!("{}\n", json!({ "ended": ended })),
        Format::Text if ended.is_empty() => "no pause was in force\n".to_owned(),
        Format::Text => ended
            .iter()
            .map(|id| format!("ended pause {id}\n"))
            .collect(),
    };
    out.write_all(text.as_bytes())
        .map_err(|e| CommandError::Setup(format!("cannot write output: {e}")))
}

#[derive(Debug, PartialEq, Eq)]
enum Ended {
    Ended,
    NotInForce,
}

fn end(client: &DaemonClient, id: &str) -> Result<Ended, CommandError> {
    // The id goes into the path: anything but a UUID's characters is refused here rather
    // than escaped into another path.
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(CommandError::Invalid(format!(
            "{id:?} is not a pause id (a UUID as `pause` printed it)"
        )));
    }
    let answer = client.send(reqwest::Method::DELETE, &format!("/pause/{id}"), None)?;
    match answer.status {
        204 => Ok(Ended::Ended),
        404 => Ok(Ended::NotInForce),
        _ => Err(answer.refused(&format!("the daemon did not end pause {id}"))),
    }
}
