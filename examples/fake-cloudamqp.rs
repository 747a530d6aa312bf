//! Runs the fake CloudAMQP Customer API on its own, to point the daemon or `curl` at it,
//! with each instance's management API on the same address (the printed template is what
//! the daemon's `cloudamqp.management_url` takes).
//!
//! ```text
//! cargo run --example fake-cloudamqp -- --bind 127.0.0.1:8090 --api-key KEY \
//!     --timeline realistic --instance 359559:bunny-1:prod
//! ```

use std::net::{SocketAddr, TcpListener};

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use cloudamqp_autoscaler::fake::{
    DEFAULT_INSTANCE_ID, FakeCloudAmqp, FakeConfig, SeedInstance, Timeline,
};

/// A fake CloudAMQP Customer API, in memory.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    bind: SocketAddr,
    /// The accepted key: clients authenticate with Basic, empty user, this as password.
    #[arg(long, default_value = "fake-api-key")]
    api_key: String,
    /// How an accepted plan change unfolds.
    #[arg(long, value_enum, default_value_t = TimelineArg::Realistic)]
    timeline: TimelineArg,
    /// An instance as ID:PLAN[:NAME]; repeat for more. Default: 359559:bunny-1.
    #[arg(long = "instance", value_parser = parse_instance)]
    instances: Vec<SeedInstance>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TimelineArg {
    /// Done at once.
    Instant,
    /// 30 s before the change shows, then 3 min reconfiguring.
    Realistic,
    /// Reconfigures forever.
    Stuck,
    /// 1 s, then 3 s: quick enough to watch.
    Demo,
}

impl From<TimelineArg> for Timeline {
    fn from(arg: TimelineArg) -> Self {
        match arg {
            TimelineArg::Instant => Timeline::instant(),
            TimelineArg::Realistic => Timeline::realistic(),
            TimelineArg::Stuck => Timeline::stuck(),
            TimelineArg::Demo => Timeline::demo(),
        }
    }
}

fn parse_instance(text: &str) -> Result<SeedInstance, String> {
    let mut parts = text.splitn(3, ':');
    let id = parts.next().unwrap_or_default();
    let id: u64 = id
        .parse()
        .map_err(|_| format!("{id:?} is not an integer instance id (expected ID:PLAN[:NAME])"))?;
    let plan = parts
        .next()
        .filter(|plan| !plan.is_empty())
        .ok_or_else(|| format!("{text:?} has no plan (expected ID:PLAN[:NAME])"))?;
    let name = parts
        .next()
        .map_or_else(|| format!("instance-{id}"), str::to_owned);
    Ok(SeedInstance::new(id, &name, plan))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let instances = if args.instances.is_empty() {
        vec![SeedInstance::new(
            DEFAULT_INSTANCE_ID,
            "bunny1-test",
            "bunny-1",
        )]
    } else {
        args.instances
    };
    for instance in &instances {
        println!(
            "instance {} ({}) on {}",
            instance.id, instance.name, instance.plan
        );
    }
    let first = instances.first().map(|instance| instance.id);
    let fake = FakeCloudAmqp::new(FakeConfig {
        api_key: args.api_key.clone(),
        timeline: args.timeline.into(),
        instances,
        ..FakeConfig::default()
    });
    let listener =
        TcpListener::bind(args.bind).with_context(|| format!("cannot listen on {}", args.bind))?;
    let running = fake.start(listener).await?;
    let base = running.base_url();
    println!("fake CloudAMQP at {base} (timeline {:?})", args.timeline);
    // The key is a made-up test key, printed so the line can be pasted as is.
    println!("try: curl -u :{} {base}/instances", args.api_key);
    let management = running.management_url();
    println!("management APIs at {management} (cloudamqp.management_url)");
    if let Some(id) = first {
        let nodes = format!("{}/nodes", management.replace("{id}", &id.to_string()));
        println!(
            "try: curl -u USER:PASSWORD {nodes}  (USER:PASSWORD from the \"url\" of \
             {base}/instances/{id})"
        );
    }
    println!("Ctrl-C to stop");

    tokio::signal::ctrl_c().await?;
    running.stop().await;
    for (id, plan) in fake.plan_changes() {
        println!("accepted: instance {id} → {plan}");
    }
    println!(
        "{} requests ({} to management APIs), {} PUTs",
        fake.requests().len(),
        fake.management_requests().len(),
        fake.put_attempts()
    );
    Ok(())
}
