//! `kill -9` at any moment loses no accepted alarm: a child process records alarms as fast
//! as it can and prints each id once `record_alarm` answered (the moment the webhook would
//! send its 202: on disk, or committed in PostgreSQL); it is killed mid-stream, and every
//! id it printed must be in the store.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::support::{Backend, alarm, open_at};

/// The child's store: a directory or a database URL ([`Backend::location`]).
const CHILD_STORE: &str = "STORE_CRASH_CHILD_STORE";
/// Acknowledged alarms to see before the kill: enough that the kill lands mid-batch.
const ACKS_BEFORE_KILL: usize = 300;

/// Each test runs itself again as the child (that test alone, with `STORE_CRASH_CHILD_STORE`
/// set), so there is no separate child test to skip or to pass vacuously when run alone.
mod kill_9_loses_no_accepted_alarm {
    use super::{Backend, CHILD_STORE, child, parent};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        if let Ok(location) = std::env::var(CHILD_STORE) {
            child(&location).await;
        }
        parent(Backend::sqlite(), "sqlite").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Ok(location) = std::env::var(CHILD_STORE) {
            child(&location).await;
        }
        parent(Backend::postgres(), "postgres").await;
    }
}

async fn parent(backend: Backend, test: &str) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            &format!("store::crash::kill_9_loses_no_accepted_alarm::{test}"),
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_STORE, backend.location())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    // Read on a thread of its own: the lines come as fast as the child writes them.
    let acked = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut acked = Vec::new();
        for line in stdout.lines() {
            let line = line.unwrap();
            // The harness writes the test's name and no newline before the first id.
            if let Some((_, id)) = line.split_once("acked ") {
                acked.push(id.parse::<i64>().unwrap());
            }
            if acked.len() >= ACKS_BEFORE_KILL || Instant::now() > deadline {
                break;
            }
        }
        acked
    })
    .await
    .unwrap();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        acked.len() >= ACKS_BEFORE_KILL,
        "the child acknowledged only {}",
        acked.len()
    );

    let (store, recovered) = backend.open().await;
    let stored: HashSet<i64> = recovered.pending_alarms.iter().map(|a| a.id).collect();
    let lost: Vec<_> = acked.iter().filter(|id| !stored.contains(id)).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    store.close().await;
}

/// The child: records alarms from 16 tasks and prints each id once `record_alarm`
/// answered, until the parent's SIGKILL; never returns.
async fn child(location: &str) -> ! {
    let (store, _) = open_at(location).await.unwrap();
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
    match std::future::pending::<std::convert::Infallible>().await {}
}
