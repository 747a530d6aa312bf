//! `kill -9` at any moment loses no accepted alarm: a child process records alarms as fast
//! as it can and prints each id once `record_alarm` answered (the moment the webhook would
//! send its 202); it is killed mid-stream, and every id it printed must be on disk.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cloudamqp_autoscaler::store::Store;

use super::support::alarm;

const CHILD_DIR: &str = "STORE_CRASH_CHILD_DIR";
/// Acknowledged alarms to see before the kill: enough that the kill lands mid-batch.
const ACKS_BEFORE_KILL: usize = 300;

/// The test runs itself again as the child (this test alone, with `STORE_CRASH_CHILD_DIR`
/// set), so there is no separate child test to skip or to pass vacuously when run alone.
#[test]
fn kill_9_loses_no_accepted_alarm() {
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        record_alarms_until_killed(std::path::Path::new(&dir));
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "store::crash::kill_9_loses_no_accepted_alarm",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut acked = Vec::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        if let Some(id) = line.strip_prefix("acked ") {
            acked.push(id.parse::<i64>().unwrap());
        }
        if acked.len() >= ACKS_BEFORE_KILL || Instant::now() > deadline {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        acked.len() >= ACKS_BEFORE_KILL,
        "the child acknowledged only {}",
        acked.len()
    );

    let (store, recovered) = Store::open(tmp.path()).unwrap();
    let on_disk: std::collections::HashSet<i64> =
        recovered.pending_alarms.iter().map(|a| a.id).collect();
    let lost: Vec<_> = acked.iter().filter(|id| !on_disk.contains(id)).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    drop(store);
}

/// The child: records alarms in `dir` from 16 tasks and prints each id once it is on disk,
/// until the parent's SIGKILL; never returns.
fn record_alarms_until_killed(dir: &std::path::Path) -> ! {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    match runtime.block_on(async move {
        let (store, _) = Store::open(dir).unwrap();
        for _ in 0..16 {
            let store = store.clone();
            tokio::spawn(async move {
                loop {
                    let id = store.record_alarm(alarm("{}")).await.unwrap();
                    println!("acked {id}");
                }
            });
        }
        // Until the parent's SIGKILL.
        std::future::pending::<std::convert::Infallible>().await
    }) {}
}
