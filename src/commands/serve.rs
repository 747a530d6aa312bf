//! `serve`: the daemon; `serve --demo`: the daemon live against the built-in simulated
//! CloudAMQP, so the whole loop runs in one command without an account.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use secrecy::SecretString;

use super::CommandError;
use crate::fake::{FakeCloudAmqp, FakeConfig, RunningFake, SeedInstance, Timeline};
use crate::settings::Settings;
use crate::startup::{Application, StartError, StartOptions};

/// The demo's simulated instance.
const DEMO_INSTANCE: u64 = 359_559;
/// The demo polls its simulated change this often.
const DEMO_POLL_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The rules file (default: the `rules.path` setting, "rules.toml").
    #[arg(long, value_name = "FILE")]
    pub rules: Option<std::path::PathBuf>,
    /// Act for real: send plan changes to CloudAMQP (same as `live = true`). Needs the API key.
    #[arg(long)]
    pub live: bool,
    /// Run live against a built-in simulated CloudAMQP (one instance on bunny-1), with
    /// the shipped rules and local state, and print how to send it an alarm.
    #[arg(long)]
    pub demo: bool,
}

/// Runs `serve` until SIGTERM/SIGINT.
pub fn run(
    config: Option<&Path>,
    args: ServeArgs,
    out: &mut dyn Write,
) -> Result<(), CommandError> {
    let mut settings = Settings::load(config)?;
    crate::telemetry::init(&settings.log);
    if args.live {
        settings.live = true;
    }
    let rules_path = args.rules.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CommandError::Setup(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        let fake = if args.demo {
            Some(start_demo(&mut settings).await?)
        } else {
            None
        };
        // The demo's own rules (the shipped ones with quick scale-down timings) unless
        // --rules names a file.
        let rules_path = match rules_path {
            Some(path) => path,
            None if args.demo => write_demo_rules(&settings.state.dir)?,
            None => settings.rules.path.clone(),
        };
        let options = StartOptions {
            rules_path,
            handle_signals: true,
            ..StartOptions::new(settings)
        };
        let app = Application::build(options).await.map_err(start_error)?;
        if fake.is_some() {
            let _ = out.write_all(demo_banner(app.addr()).as_bytes());
            let _ = out.flush();
        }
        let result = app.run_until_stopped().await.map_err(start_error);
        if let Some(fake) = fake {
            fake.stop().await;
        }
        result
    })
}

fn start_error(error: StartError) -> CommandError {
    CommandError::Setup(format!("cannot start: {error}"))
}

/// Starts the simulated CloudAMQP and points the settings at it: live, quick polling,
/// and a state directory of its own, started afresh (the simulation starts afresh too).
async fn start_demo(settings: &mut Settings) -> Result<RunningFake, CommandError> {
    let key = format!("demo-{}", uuid::Uuid::new_v4().simple());
    let fake = FakeCloudAmqp::new(FakeConfig {
        api_key: key.clone(),
        timeline: Timeline::demo(),
        instances: vec![SeedInstance::new(DEMO_INSTANCE, "demo", "bunny-1")],
        ..FakeConfig::default()
    });
    let running = fake
        .start_local()
        .await
        .map_err(|e| CommandError::Setup(format!("cannot start the simulated CloudAMQP: {e}")))?;
    settings.live = true;
    settings.cloudamqp.api_url = running.base_url();
    settings.cloudamqp.management_url = running.management_url();
    settings.cloudamqp.api_key = Some(SecretString::from(key));
    settings.cloudamqp.poll_interval = settings.cloudamqp.poll_interval.min(DEMO_POLL_INTERVAL);
    // The demo is one daemon on a state of its own, never a shared database.
    settings.state.database_url = None;
    settings.state.dir = settings.state.dir.join("demo");
    if settings.state.dir.exists() {
        std::fs::remove_dir_all(&settings.state.dir).map_err(|e| {
            CommandError::Setup(format!(
                "cannot reset the demo state {}: {e}",
                settings.state.dir.display()
            ))
        })?;
    }
    Ok(running)
}

/// The demo's scale-down timings: minutes, not hours, so a newcomer sees the plan come
/// back down while watching.
const DEMO_SCALE_DOWN: &str = r#"
# serve --demo: the shipped rules above, and scale-down timings short enough to watch.
[scale_down]
quiet_for = "60s"
after_up = "20s"
after_down = "60s"
check_every = "5s"
window = "15s"
memory_headroom = 60
"#;

/// Writes the demo's rules (the shipped rules.toml with [`DEMO_SCALE_DOWN`]) into the demo's
/// state directory and returns the path.
fn write_demo_rules(state_dir: &Path) -> Result<std::path::PathBuf, CommandError> {
    let path = state_dir.join("demo-rules.toml");
    let text = format!("{}{DEMO_SCALE_DOWN}", include_str!("../../rules.toml"));
    std::fs::create_dir_all(state_dir)
        .and_then(|()| std::fs::write(&path, text))
        .map_err(|e| {
            CommandError::Setup(format!(
                "cannot write the demo rules {}: {e}",
                path.display()
            ))
        })?;
    Ok(path)
}

fn demo_banner(addr: std::net::SocketAddr) -> String {
    format!(
        "\ncloudamqp-autoscaler demo: live against a simulated CloudAMQP with instance {DEMO_INSTANCE} (\"demo\") on bunny-1.\n\
         Send it the Friday-evening alarm (memory at 85 %):\n\n  \
         curl -X POST http://{addr}/cloudamqp/alarm -d '{{\"alarm_type\":\"memory\",\"value\":85,\"instance_id\":{DEMO_INSTANCE}}}'\n\n\
         then watch the plan change to hare-1 within seconds, on the dashboard or in the JSON:\n\n  \
         open http://{addr}/\n  \
         curl http://{addr}/status\n\n\
         Send it again: the instance is cooling down, nothing is changed twice.\n\n\
         Then stay quiet. The demo's own timings (rules in the demo state directory): after 60 s with no\n\
         alarm (quiet_for) it looks at the broker every 5 s (check_every) - the simulated broker uses\n\
         300 MiB of bunny-1's 1.6 GiB per node, within the 60 % headroom - and once the looks have\n\
         passed for 15 s (window) it steps back down to bunny-1. An alarm meanwhile starts the quiet\n\
         minute again: watch instances.{DEMO_INSTANCE}.scale_down.last_look in /status. To hear it too, start\n         the demo with AUTOSCALER__NOTIFY__WEBHOOK__URL (or __SLACK__URL) set. Ctrl-C stops.\n\n"
    )
}
