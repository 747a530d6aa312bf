//! Looks at a thousand instances above their floor: how the API calls spread over
//! `check_every`. The daemon (in this process, live, release build) against the fake
//! CloudAMQP, with `check_every = 10s`, a window too long to step anything down, and the
//! default client-side rate limit (5 requests/s) unless `LOOKS_RPS` says otherwise.
//!
//! Run: `cargo bench --bench looks` (optionally `-- 1000 10 40`: instances, check_every in
//! seconds, seconds to watch). Prints the calls per second (instance reads and management
//! reads together) after the first interval, and each instance's looks. Figures in
//! BENCHMARKS.md.

use std::time::Duration;

use cloudamqp_autoscaler::fake::{FakeCloudAmqp, FakeConfig, SeedInstance, Timeline};
use cloudamqp_autoscaler::settings::Settings;
use cloudamqp_autoscaler::startup::{Application, StartOptions};
use cloudamqp_autoscaler::store::{BaselineRow, CapacityRow, InstanceRow, Store};

const KEY: &str = "bench-key";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let count = args.first().copied().unwrap_or(1000);
    let every = args.get(1).copied().unwrap_or(10);
    let watch = args.get(2).copied().unwrap_or(40);
    let rps = std::env::var("LOOKS_RPS").unwrap_or_else(|_| "5".into());
    let fake = FakeCloudAmqp::new(FakeConfig {
        api_key: KEY.into(),
        timeline: Timeline::instant(),
        instances: (1..=count)
            .map(|id| SeedInstance::new(id, &format!("i-{id}"), "hare-1"))
            .collect(),
        ..FakeConfig::default()
    });
    let running = fake.start_local().await.expect("fake starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("state");
    let (store, _) = Store::open(&state).expect("store");
    let seen = jiff::Timestamp::now();
    for id in 1..=count {
        let instance = InstanceRow {
            id,
            name: Some(format!("i-{id}")),
            providerid: None,
            plan: Some("hare-1".into()),
            updated_at: seen,
        };
        store.upsert_instance(instance).await.expect("instance");
        let baseline = BaselineRow {
            instance_id: id,
            plan: "bunny-1".into(),
            since: seen,
        };
        store.set_baseline(baseline).await.expect("baseline");
        let capacity = CapacityRow {
            instance_id: id,
            plan: "bunny-1".into(),
            mem_limit: 1_739_461_754,
            nodes: 1,
            seen_at: seen,
        };
        store.record_capacity(capacity).await.expect("capacity");
    }
    store.close().await;
    let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/rules.toml"))
        .expect("the shipped rules");
    let rules = dir.path().join("rules.toml");
    let section = format!(
        "\n[scale_down]\nquiet_for = \"0s\"\nafter_up = \"0s\"\ncheck_every = \"{every}s\"\nwindow = \"24h\"\n"
    );
    std::fs::write(&rules, format!("{shipped}{section}")).expect("rules written");
    let env = [
        ("AUTOSCALER__SERVER__BIND", "127.0.0.1:0".to_owned()),
        ("AUTOSCALER__CLOUDAMQP__API_URL", running.base_url()),
        (
            "AUTOSCALER__CLOUDAMQP__MANAGEMENT_URL",
            running.base_url().replace("/api", "/management/{id}/api"),
        ),
        ("AUTOSCALER__CLOUDAMQP__REQUESTS_PER_SECOND", rps.clone()),
        ("AUTOSCALER__STATE__DIR", state.display().to_string()),
        ("AUTOSCALER__RULES__PATH", rules.display().to_string()),
        ("AUTOSCALER__LIVE", "true".to_owned()),
        ("AUTOSCALER__LOG__LEVEL", "error".to_owned()),
        ("CLOUDAMQP_API_KEY", KEY.to_owned()),
    ]
    .map(|(k, v)| (k.to_owned(), v));
    let settings = Settings::load_from(None, env).expect("settings");
    let app = Application::build(StartOptions::new(settings))
        .await
        .expect("daemon starts");
    let handle = app.handle();
    let daemon = tokio::spawn(app.run_until_stopped());
    let started = jiff::Timestamp::now();
    tokio::time::sleep(Duration::from_secs(watch)).await;
    handle.shutdown();
    let _ = daemon.await;
    running.stop().await;

    let calls: Vec<jiff::Timestamp> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path != "/api/plans")
        .map(|r| r.at)
        .collect();
    let mut per_second = vec![0u64; usize::try_from(watch).unwrap_or(0) + 1];
    for at in &calls {
        let second = at.duration_since(started).as_secs();
        if let Some(slot) = usize::try_from(second)
            .ok()
            .and_then(|s| per_second.get_mut(s))
        {
            *slot += 1;
        }
    }
    let steady: Vec<u64> = per_second
        .iter()
        .copied()
        .skip(usize::try_from(every).unwrap_or(0))
        .take(usize::try_from(watch.saturating_sub(every + 1)).unwrap_or(0))
        .collect();
    let mut sorted = steady.clone();
    sorted.sort_unstable();
    let looks = fake.management_requests().len();
    println!(
        "{count} instances, check_every {every}s, {rps} requests/s, watched {watch}s: {} calls \
         ({looks} management reads); after the first interval per second min {} median {} max {} \
         (an even spread is {} a second, capped at {rps}); looks per instance {:.2} in {watch}s",
        calls.len(),
        sorted.first().unwrap_or(&0),
        sorted.get(sorted.len() / 2).unwrap_or(&0),
        sorted.last().unwrap_or(&0),
        2 * count / every.max(1),
        looks as f64 / count as f64,
    );
}
