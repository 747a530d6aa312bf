//! What a replica pays on PostgreSQL with a thousand instances: deciding an alarm that
//! starts a change (the version read, the alarm, the decision with its change recorded
//! only if the version still holds), a claim round that finds nothing (every replica's
//! cost every 5 s), and taking over everything a replica left (a thousand open changes and
//! a thousand undecided alarms).
//!
//! Run: `cargo bench --bench replicas` (optionally `-- 1000`: instances). It makes a
//! database `autoscaler_bench_replicas` on the server `AUTOSCALER_TEST_PG_URL` names
//! (default 127.0.0.1:5432 as `postgres`, trust auth), dropped first and at the end.
//! Figures in BENCHMARKS.md.

use std::time::{Duration, Instant};

use cloudamqp_autoscaler::decide::{ChangeKind, Direction};
use cloudamqp_autoscaler::store::{
    DecisionKind, NewAlarm, NewChange, NewDecision, ReplicaOptions, Store, new_replica_id,
};
use jiff::Timestamp;
use secrecy::SecretString;
use tokio_postgres::NoTls;

const DB: &str = "autoscaler_bench_replicas";
const LEASE: Duration = Duration::from_secs(3);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let instances: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1000);
    let admin = std::env::var("AUTOSCALER_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let (client, connection) = tokio_postgres::connect(&admin, NoTls).await.unwrap();
    tokio::spawn(connection);
    let recreate = format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)");
    client.batch_execute(&recreate).await.unwrap();
    client
        .batch_execute(&format!("CREATE DATABASE {DB}"))
        .await
        .unwrap();
    let mut config: tokio_postgres::Config = admin.parse().unwrap();
    config.dbname(DB);
    let url = SecretString::from(url_of(&config));

    let (owner, _) = open(&url).await;
    let (survivor, _) = open(&url).await;

    // Deciding: one alarm per instance, each starting a change (as a replica decides: the
    // version first, the change recorded only if it still holds).
    let mut decide = Vec::new();
    for instance in 1..=instances {
        let started = Instant::now();
        let world = owner.world_version().await.unwrap();
        let alarm = owner.record_alarm(alarm(instance)).await.unwrap();
        owner
            .record_decision(
                alarm,
                decision(instance),
                Some(change(alarm, instance, world)),
            )
            .await
            .unwrap()
            .expect("a change");
        decide.push(started.elapsed());
    }
    report("decide an alarm that starts a change", &mut decide);

    // A thousand more alarms, accepted and never decided (their replica dies).
    for instance in 1..=instances {
        owner.record_alarm(alarm(instance)).await.unwrap();
    }

    // A claim round with nothing to take (the owner is alive, its claims fresh).
    let mut idle = Vec::new();
    for _ in 0..50 {
        let started = Instant::now();
        let claimed = survivor.claim().await.unwrap();
        assert!(claimed.changes.is_empty() && claimed.alarms.is_empty());
        idle.push(started.elapsed());
    }
    report(
        &format!("claim round, nothing to take ({instances} open changes held)"),
        &mut idle,
    );

    // The owner goes; everything it held is the survivor's to take. A clean stop ends its
    // leases at once, which is where a crashed owner's stand once they expired.
    owner.close().await;
    tokio::time::sleep(Duration::from_millis(1100)).await; // the alarms' unclaimed grace
    let started = Instant::now();
    let (mut changes, mut alarms, mut rounds) = (0, 0, 0);
    loop {
        let claimed = survivor.claim().await.unwrap();
        rounds += 1;
        changes += claimed.changes.len();
        alarms += claimed.alarms.len();
        if !claimed.more_changes && !claimed.more_alarms {
            break;
        }
    }
    let took = started.elapsed();
    println!(
        "take over {changes} open changes and {alarms} undecided alarms: {:.1} ms in {rounds} claims ({:.2} ms a claim)",
        took.as_secs_f64() * 1e3,
        took.as_secs_f64() * 1e3 / f64::from(rounds),
    );
    assert_eq!(changes as u64, instances);
    assert_eq!(alarms as u64, instances);

    survivor.close().await;
    client.batch_execute(&recreate).await.unwrap();
}

async fn open(url: &SecretString) -> (Store, cloudamqp_autoscaler::store::Recovered) {
    Store::open_shared(
        url,
        ReplicaOptions {
            id: new_replica_id(),
            lease: LEASE,
            live: true,
            rules_hash: "bench".into(),
            database_ca: None,
        },
    )
    .await
    .unwrap()
}

fn url_of(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => "127.0.0.1".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("postgres");
    format!("postgres://{user}@{host}:{port}/{DB}")
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    println!(
        "{what}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} samples)",
        at(0.5),
        at(0.99),
        at(1.0),
        samples.len()
    );
}

fn alarm(instance: u64) -> NewAlarm {
    NewAlarm {
        received_at: Timestamp::now(),
        remote_addr: Some("203.0.113.7:51000".into()),
        body: format!(r#"{{"alarm_type":"memory","value":85,"instance_id":{instance}}}"#),
        kind: "memory".into(),
        value: Some(85.0),
        instance: Some(instance.to_string()),
        resolved: false,
        message: None,
        triggered_at: None,
    }
}

fn decision(instance: u64) -> NewDecision {
    NewDecision {
        at: Timestamp::now(),
        instance_id: Some(instance),
        plan: Some("bunny-1".into()),
        kind: DecisionKind::Change,
        reason: None,
        rule: Some("memory-high".into()),
        from_plan: Some("bunny-1".into()),
        to_plan: Some("hare-1".into()),
        detail: "memory 85 > 80: bunny-1 -> hare-1".into(),
    }
}

fn change(
    alarm: cloudamqp_autoscaler::store::AlarmId,
    instance: u64,
    world: Option<i64>,
) -> NewChange {
    NewChange {
        instance_id: instance,
        alarm_id: Some(alarm),
        direction: Direction::Up,
        kind: ChangeKind::Plan,
        from_plan: "bunny-1".into(),
        to_plan: "hare-1".into(),
        rule: "memory-high".into(),
        cooldown: Duration::from_secs(1800),
        dry_run: false,
        intended_at: Timestamp::now(),
        world,
    }
}
