//! Alarm → PUT sent, on loopback: how long from the webhook request to CloudAMQP receiving
//! the plan change. The daemon (in this process, live, release build) against the fake
//! CloudAMQP (in this process), one alarm at a time, each for a different instance so every
//! alarm leads to a plan change.
//!
//! Run: `cargo bench --bench alarm_to_put` (optionally `-- 2000` alarms). Figures in
//! BENCHMARKS.md. The client-side rate limit is raised for the run: with the default
//! (5 requests/s) the limiter, by design, dominates the latency of back-to-back alarms.

use std::time::{Duration, Instant};

use cloudamqp_autoscaler::fake::{FakeCloudAmqp, FakeConfig, SeedInstance, Timeline};
use cloudamqp_autoscaler::settings::Settings;
use cloudamqp_autoscaler::startup::{Application, StartOptions};

const KEY: &str = "bench-key";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let alarms: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(500);
    let instances = (1..=alarms)
        .map(|id| SeedInstance::new(id, &format!("bench-{id}"), "bunny-1"))
        .collect();
    let fake = FakeCloudAmqp::new(FakeConfig {
        api_key: KEY.into(),
        timeline: Timeline::instant(),
        instances,
        ..FakeConfig::default()
    });
    let running = fake.start_local().await.expect("fake starts");
    let dir = tempfile::tempdir().expect("temp dir");
    // `ALARM_TO_PUT_SCALE_DOWN=1`: the shipped rules with a `[scale_down]` selecting every
    // instance, so each PUT waits for the read of the broker's management API before it.
    let rules = dir.path().join("rules.toml");
    let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/rules.toml"))
        .expect("the shipped rules");
    let scale_down = std::env::var_os("ALARM_TO_PUT_SCALE_DOWN").is_some();
    // `ALARM_TO_PUT_DISK=1`: disk alarms and a disk rule, so each PUT is a disk resize that
    // waits for a read of the instance's nodes.
    let disk = std::env::var_os("ALARM_TO_PUT_DISK").is_some();
    let mut extra = String::new();
    if scale_down {
        extra.push_str("\n[scale_down]\n");
    }
    if disk {
        extra.push_str(
            "\n[[rules]]\nname = \"disk-low\"\nalarm = \"disk\"\nbelow = 15\ndisk_sizes = [25]\n",
        );
    }
    std::fs::write(&rules, format!("{shipped}{extra}")).expect("rules written");
    let management = running.base_url().replace("/api", "/management/{id}/api");
    let env = [
        ("AUTOSCALER__CLOUDAMQP__MANAGEMENT_URL", management),
        ("AUTOSCALER__SERVER__BIND", "127.0.0.1:0".to_owned()),
        ("AUTOSCALER__CLOUDAMQP__API_URL", running.base_url()),
        (
            "AUTOSCALER__CLOUDAMQP__REQUESTS_PER_SECOND",
            "10000".to_owned(),
        ),
        ("AUTOSCALER__CLOUDAMQP__POLL_INTERVAL", "1s".to_owned()),
        (
            "AUTOSCALER__STATE__DIR",
            dir.path().join("state").display().to_string(),
        ),
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
    let url = format!("http://{}/cloudamqp/alarm", app.addr());
    let handle = app.handle();
    let daemon = tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::new();

    // The catalogue is fetched once, by the first alarm: warm it up outside the sample.
    let mut latencies = Vec::new();
    for id in 1..=alarms {
        let body = if disk {
            format!(r#"{{"alarm_type":"disk","value":10,"instance_id":{id}}}"#)
        } else {
            format!(r#"{{"alarm_type":"memory","value":85,"instance_id":{id}}}"#)
        };
        let sent = Instant::now();
        let status = http
            .post(&url)
            .body(body)
            .send()
            .await
            .expect("webhook answers")
            .status();
        assert_eq!(status, 202);
        // One alarm at a time, each a change: the id-th PUT is this alarm's. (Counting
        // is cheap; copying the growing request log every poll was not.) The timer's
        // resolution (1 ms) is the figures' resolution.
        let want = usize::try_from(id).expect("fits");
        while fake.put_attempts() < want {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        if id > 1 {
            latencies.push(sent.elapsed());
        }
    }
    handle.shutdown();
    let _ = daemon.await;
    running.stop().await;

    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "alarm -> PUT received{}{}, {} alarms: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        if scale_down {
            " ([scale_down]: a management read before each PUT)"
        } else {
            ""
        },
        if disk {
            " (disk alarms: a nodes read before each disk PUT)"
        } else {
            ""
        },
        latencies.len(),
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 90.0)),
        ms(percentile(&latencies, 99.0)),
        ms(*latencies.last().expect("at least one sample")),
    );
}
