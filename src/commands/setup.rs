//! `setup`: create or update the webhook recipient and the alarms the rules act on.

use std::io::Write;
use std::path::Path;

use secrecy::ExposeSecret;

use super::CommandError;
use crate::clock::SystemClock;
use crate::cloudamqp::CloudAmqpClient;
use crate::rules::{RuleSet, RulesFailure, Selector};
use crate::setup::{self, SetupRequest};

#[derive(Debug, clap::Args)]
pub struct SetupArgs {
    /// The daemon's webhook as CloudAMQP reaches it, e.g.
    /// https://autoscaler.example.com/cloudamqp/alarm; `?token=<server.webhook_token>` is
    /// added.
    #[arg(long, value_name = "URL")]
    pub url: String,
    /// Only this instance (id, UUID or name; `*` and `?` globs); repeatable. Default: the
    /// instances the rules select.
    #[arg(long = "instance", value_name = "SEL")]
    pub instances: Vec<String>,
    /// Do it; without it only the plan is printed and nothing is written.
    #[arg(long)]
    pub apply: bool,
    /// The rules file (default: the `rules.path` setting, "rules.toml").
    #[arg(long, value_name = "FILE")]
    pub rules: Option<std::path::PathBuf>,
}

/// Runs `setup`. Exit 1 when CloudAMQP refused a write or an alarm the rules need cannot be
/// set up; 2 for configuration problems, a refused API key or an API out of reach.
pub fn run(
    config: Option<&Path>,
    args: SetupArgs,
    out: &mut dyn Write,
) -> Result<(), CommandError> {
    let (path, settings) = super::rules_path(config, args.rules, true)?;
    let settings = settings.ok_or_else(|| CommandError::Setup("no settings".to_owned()))?;
    // Invalid rules are a configuration error here: setup acts on them.
    let rules = RuleSet::load(&path).map_err(|failure| match failure {
        RulesFailure::Io { .. } => CommandError::Setup(failure.to_string()),
        RulesFailure::Invalid { .. } => CommandError::Setup(failure.to_string()),
    })?;
    let base = webhook_url(&args.url)?;
    let token = settings
        .server
        .webhook_token
        .as_ref()
        .filter(|t| !t.expose_secret().trim().is_empty())
        .ok_or_else(|| {
            CommandError::Setup(
                "no server.webhook_token (or AUTOSCALER__SERVER__WEBHOOK_TOKEN): the webhook recipient needs the token the daemon checks".to_owned(),
            )
        })?;
    let url = setup::url_with_token(&base, token.expose_secret());
    let selectors: Vec<Selector> = args.instances.iter().map(|s| Selector::new(s)).collect();
    let client = CloudAmqpClient::new(&settings.cloudamqp, SystemClock::shared())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CommandError::Setup(format!("cannot start the async runtime: {e}")))?;
    let request = SetupRequest {
        selectors: &selectors,
        apply: args.apply,
        url: &url,
    };
    let report = runtime
        .block_on(setup::run(&client, &rules, &request))
        .map_err(|e| CommandError::Setup(setup::scrub(&format!("CloudAMQP API: {e}"))))?;
    let io = |e: std::io::Error| CommandError::Setup(format!("cannot write output: {e}"));
    if report.instances == 0 {
        return if selectors.is_empty() {
            writeln!(
                out,
                "no instance of the account is selected by the rules: nothing to set up"
            )
            .map_err(io)
        } else {
            Err(CommandError::Setup(format!(
                "--instance {} matches no instance of the account",
                args.instances.join(", ")
            )))
        };
    }
    for line in &report.lines {
        writeln!(out, "{line}").map_err(io)?;
    }
    if let Some(error) = &report.fatal {
        let error = setup::scrub(&format!("CloudAMQP API: {error}"));
        // Writes already made are shown above: the run failed half-way (exit 1), not for
        // its configuration.
        return Err(if args.apply && report.writes > 0 {
            CommandError::Invalid(format!(
                "setup stopped after {} write{}: {error}; run it again once CloudAMQP answers",
                report.writes,
                if report.writes == 1 { "" } else { "s" }
            ))
        } else {
            CommandError::Setup(error)
        });
    }
    if !args.apply && report.writes > 0 {
        writeln!(
            out,
            "{} change{} planned, nothing written: run again with --apply to make {}",
            report.writes,
            if report.writes == 1 { "" } else { "s" },
            if report.writes == 1 { "it" } else { "them" }
        )
        .map_err(io)?;
    }
    if report.problems > 0 {
        return Err(CommandError::Invalid(format!(
            "setup: {} problem{} (the lines starting with `!`)",
            report.problems,
            if report.problems == 1 { "" } else { "s" }
        )));
    }
    Ok(())
}

/// `--url` checked: an absolute http(s) URL without a fragment or a token of its own.
fn webhook_url(text: &str) -> Result<String, CommandError> {
    let bad = |why: &str| CommandError::Setup(format!("--url {:?}: {why}", setup::scrub(text)));
    let url = reqwest::Url::parse(text.trim())
        .map_err(|e| bad(&format!("not an absolute URL ({e}); write it like https://autoscaler.example.com/cloudamqp/alarm")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad(
            "CloudAMQP sends webhooks to http(s) URLs only; write it like https://autoscaler.example.com/cloudamqp/alarm",
        ));
    }
    if url.fragment().is_some() {
        return Err(bad("a #fragment is never sent to the server; leave it out"));
    }
    if url
        .query_pairs()
        .any(|(key, _)| key.eq_ignore_ascii_case("token"))
    {
        return Err(bad(
            "leave the token out: setup adds ?token=<server.webhook_token> itself",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "no user or password in it: the webhook is authenticated by its token",
        ));
    }
    Ok(text.trim().to_owned())
}
