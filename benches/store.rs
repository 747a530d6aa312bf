//! `record_alarm` throughput: the webhook's 202 waits for it, so it bounds the alarms per
//! second the daemon can accept. 64 tasks each record alarms one after the other (64
//! webhook clients at once, 10 000 alarms in all), against one task alone (every alarm
//! its own fsync). The average batch size shows the group commit at work.
//!
//! Run: `cargo bench --bench store`. Figures are recorded in BENCHMARKS.md.

use std::time::Duration;

use cloudamqp_autoscaler::store::{NewAlarm, Store, StoreStats};
use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use jiff::Timestamp;

/// A realistic body (as redacted by the server): a few hundred bytes of JSON.
const BODY: &str = r#"{"alarm_type":"memory","value":85,"instance_id":"359559","triggered_at":"2026-02-20T08:30:00Z","message":"Memory usage above 80% on node rabbit@node-01","metadata":{"server":"node-01","threshold":80,"resolved":false}}"#;

fn alarm() -> NewAlarm {
    NewAlarm {
        received_at: Timestamp::now(),
        remote_addr: Some("203.0.113.7:51000".into()),
        body: BODY.into(),
        kind: "memory".into(),
        value: Some(85.0),
        instance: Some("359559".into()),
        resolved: false,
        message: Some("Memory usage above 80% on node rabbit@node-01".into()),
        triggered_at: Some("2026-02-20T08:30:00Z".into()),
    }
}

/// `clients` tasks record `total` alarms between them, each awaiting its 202 before the next.
async fn record(store: &Store, clients: u64, total: u64) {
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..total / clients {
                    store.record_alarm(alarm()).await.expect("recorded");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
}

fn record_alarm(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir_in(std::env::temp_dir()).expect("temp dir");
    let (store, _) = Store::open(dir.path()).expect("store");

    let mut group = c.benchmark_group("store_record_alarm");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    for (clients, total) in [(1_u64, 200_u64), (64, 10_000)] {
        let before = store.stats();
        group.throughput(Throughput::Elements(total));
        group.bench_with_input(
            BenchmarkId::new("clients", clients),
            &clients,
            |b, &clients| {
                b.iter(|| runtime.block_on(record(&store, clients, total)));
            },
        );
        report(clients, before, store.stats());
    }
    group.finish();
    runtime.block_on(store.close());
}

fn report(clients: u64, before: StoreStats, after: StoreStats) {
    let commands = after.commands - before.commands;
    let batches = (after.batches - before.batches).max(1);
    println!(
        "store_record_alarm/clients/{clients}: {commands} alarms in {batches} batches, \
         average batch {:.1}, largest {}",
        commands as f64 / batches as f64,
        after.largest_batch
    );
}

criterion_group!(benches, record_alarm);
criterion_main!(benches);
