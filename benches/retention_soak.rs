//! Retention soak: a simulated week of alarms against the real store with retention on,
//! printing the rows and the file's size at the end of each simulated day. The store must
//! stay bounded by what the retention keeps, however long it runs.
//!
//! 20 instances each get an alarm every 30 s of simulated time (40 alarms a simulated
//! minute, 57 600 a day, 403 200 in the week), each decided as a skip; every simulated
//! minute the daemon's retention batch runs, with `state.retention` = 1 day (`SOAK_DAYS` and
//! `SOAK_RETENTION_HOURS` change the run). The simulated clock is the alarms' own
//! timestamps: no waiting.
//!
//! Run: `cargo bench --bench retention_soak`. Figures are recorded in BENCHMARKS.md.

use std::time::Duration;

use cloudamqp_autoscaler::store::{DecisionKind, NewAlarm, NewDecision, Store};
use jiff::Timestamp;

const INSTANCES: u64 = 20;
const PER_MINUTE: u64 = 2;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn alarm(at: Timestamp, instance: u64) -> (NewAlarm, NewDecision) {
    let alarm = NewAlarm {
        received_at: at,
        remote_addr: Some("203.0.113.7:51000".into()),
        body: format!(r#"{{"alarm_type":"cpu","value":91,"instance_id":{instance}}}"#),
        kind: "cpu".into(),
        value: Some(91.0),
        instance: Some(instance.to_string()),
        resolved: false,
        message: None,
        triggered_at: None,
    };
    let decision = NewDecision {
        at,
        instance_id: Some(instance),
        plan: Some("hare-1".into()),
        kind: DecisionKind::Skip,
        reason: Some("no_matching_rule".into()),
        rule: None,
        from_plan: None,
        to_plan: None,
        detail: "no rule for cpu alarms".into(),
    };
    (alarm, decision)
}

fn main() {
    let days = env_u64("SOAK_DAYS", 7);
    let retention = Duration::from_secs(env_u64("SOAK_RETENTION_HOURS", 24) * 3600);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let rules = cloudamqp_autoscaler::rules::parse("soak.toml", "[ladders]\nl = [\"a\", \"b\"]\n")
        .expect("rules");
    let started = std::time::Instant::now();
    runtime.block_on(async {
        let (store, _) = Store::open(dir.path()).expect("store");
        let db = store.path().to_owned();
        let mut now: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        println!("| day | alarms written | alarm rows | file MiB | rows pruned that day | longest prune (ms) |");
        println!("|---:|---:|---:|---:|---:|---:|");
        let mut written = 0u64;
        for day in 1..=days {
            let mut pruned = 0u64;
            let mut longest = Duration::ZERO;
            for _minute in 0..24 * 60 {
                let writes: Vec<_> = (0..INSTANCES * PER_MINUTE)
                    .map(|n| {
                        let at = cloudamqp_autoscaler::clock::add(
                            now,
                            Duration::from_millis(n * 60_000 / (INSTANCES * PER_MINUTE)),
                        );
                        let (alarm, decision) = alarm(at, 1000 + n % INSTANCES);
                        store.record_decided_alarm(alarm, decision)
                    })
                    .collect();
                for write in writes {
                    write.await.expect("recorded");
                }
                written += INSTANCES * PER_MINUTE;
                now = cloudamqp_autoscaler::clock::add(now, Duration::from_secs(60));
                let prune = cloudamqp_autoscaler::retention::prune_at(now, retention, &rules);
                let timer = std::time::Instant::now();
                pruned += store.prune(prune).await.expect("pruned").rows;
                longest = longest.max(timer.elapsed());
            }
            let conn = rusqlite::Connection::open_with_flags(
                &db,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .expect("reader");
            let rows: i64 = conn
                .query_row("SELECT count(*) FROM alarms", [], |r| r.get(0))
                .unwrap();
            let bytes = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
            println!(
                "| {day} | {written} | {rows} | {:.1} | {pruned} | {:.1} |",
                bytes as f64 / (1024.0 * 1024.0),
                longest.as_secs_f64() * 1000.0
            );
        }
        store.close().await;
    });
    eprintln!(
        "soak took {:.0} s of wall time",
        started.elapsed().as_secs_f64()
    );
}
