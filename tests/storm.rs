//! An alarm storm: a thousand instances alarming at once, in process against the fake.
//!
//! Every alarm is recorded and decided exactly once, every instance gets exactly one plan
//! change, and the daemon's calls to CloudAMQP stay within its client-side rate limit
//! (`cloudamqp.requests_per_second`, bursts of as many), measured on the fake's arrival
//! timestamps. CloudAMQP's own limits are undocumented; what is checked is that a server
//! allowing `rate + burst` requests in any second would never have answered 429, and that
//! when 429s do come, each costs one retry and no more (no cascade).

#[path = "state_query/mod.rs"]
mod state_query;
#[path = "daemon_support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use cloudamqp_autoscaler::fake::{Fault, FaultRule, RecordedRequest, SeedInstance};
use futures_util::StreamExt;
use futures_util::stream;
use serde_json::Value;
use support::{Spawn, TOKEN, TestApp, spawn_app};

/// The first instance id of the storm; the others follow it.
const FIRST_ID: u64 = 500_000;
/// Concurrent webhook senders (the test machine has two cores).
const SENDERS: usize = 64;

fn instances(count: u64) -> Vec<SeedInstance> {
    (0..count)
        .map(|i| SeedInstance::new(FIRST_ID + i, &format!("storm-{i}"), "bunny-1"))
        .collect()
}

async fn storm_app(count: u64, rate: u32, live: bool) -> TestApp {
    spawn_app(
        Spawn {
            live,
            instances: instances(count),
            poll_interval: "1s",
            change_timeout: "10m",
            ..Spawn::default()
        }
        .env(
            "AUTOSCALER__CLOUDAMQP__REQUESTS_PER_SECOND",
            &rate.to_string(),
        ),
    )
    .await
}

/// One memory alarm per instance, `SENDERS` at a time; every answer must be a 202.
async fn alarm_all(app: &TestApp, count: u64) {
    let url = format!("{}/cloudamqp/alarm?token={TOKEN}", app.base);
    let statuses: Vec<u16> = stream::iter(0..count)
        .map(|i| {
            let http = app.http.clone();
            let url = url.clone();
            async move {
                let body = format!(
                    r#"{{"alarm_type":"memory","value":85,"instance_id":{}}}"#,
                    FIRST_ID + i
                );
                http.post(&url)
                    .body(body)
                    .send()
                    .await
                    .map_or(0, |r| r.status().as_u16())
            }
        })
        .buffer_unordered(SENDERS)
        .collect()
        .await;
    let refused: Vec<_> = statuses.iter().filter(|s| **s != 202).collect();
    assert!(
        refused.is_empty(),
        "{} alarms not accepted: {refused:?}",
        refused.len()
    );
}

fn count(app: &TestApp, sql: &str) -> i64 {
    app.query(sql)[0][0].as_i64().unwrap()
}

async fn until(what: &str, within: Duration, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < within, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Arrival times on the fake, in nanoseconds, sorted.
fn arrivals(requests: &[RecordedRequest]) -> Vec<i128> {
    let mut at: Vec<i128> = requests.iter().map(|r| r.at.as_nanosecond()).collect();
    at.sort_unstable();
    at
}

/// The most requests that arrived within any one second.
fn busiest_second(at: &[i128]) -> usize {
    let mut busiest = 0;
    let mut start = 0;
    for end in 0..at.len() {
        while at[end] - at[start] >= 1_000_000_000 {
            start += 1;
        }
        busiest = busiest.max(end - start + 1);
    }
    busiest
}

/// How late a request may arrive at the fake after the limiter let it out, in seconds
/// (scheduling on a shared two-core machine): a request let out just after a second may
/// land inside it. Generous, and still far below what an unlimited client would show (a
/// thousand requests within a second or two).
const ARRIVAL_JITTER: f64 = 0.25;

/// `requests` kept to the client-side limit of `rate` per second in bursts of `rate`
/// (governor's GCRA): any span of `t` seconds holds at most `burst + rate * t` requests.
/// Checked for every one-second window and for the whole run.
fn assert_held_to(requests: &[RecordedRequest], rate: u32) {
    let at = arrivals(requests);
    let rate = f64::from(rate);
    let allowed = |seconds: f64| (rate + rate * (seconds + ARRIVAL_JITTER)).floor() as usize + 1;
    let busiest = busiest_second(&at);
    assert!(
        busiest <= allowed(1.0),
        "{busiest} requests within one second, over rate + burst = {}",
        2.0 * rate
    );
    let span = (at[at.len() - 1] - at[0]) as f64 / 1e9;
    assert!(
        at.len() <= allowed(span),
        "{} requests in {span:.1} s: over {rate}/s plus one burst",
        at.len()
    );
    eprintln!(
        "{} requests in {span:.1} s ({:.1}/s); busiest second {busiest} (rate + burst = {})",
        at.len(),
        at.len() as f64 / span,
        2.0 * rate
    );
}

/// One storm at a time: each measures rates, which a neighbour's load would blur.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn assert_no_429(requests: &[RecordedRequest]) {
    let statuses: std::collections::BTreeSet<u16> = requests.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [200].into(),
        "every call answered 200: no 429 provoked"
    );
}

/// A thousand instances alarm at once (dry run: each alarm costs one read of its
/// instance), at 20 requests per second: every alarm recorded and decided exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_instances_alarming_at_once_are_recorded_and_decided_once_within_the_rate() {
    const COUNT: u64 = 1_000;
    const RATE: u32 = 20;
    let _one = ONE_AT_A_TIME.lock().await;
    let started = Instant::now();
    let app = storm_app(COUNT, RATE, false).await;
    alarm_all(&app, COUNT).await;
    let accepted_in = started.elapsed();
    assert_eq!(count(&app, "SELECT count(*) FROM alarms"), COUNT as i64);
    until("every alarm decided", Duration::from_secs(100), || {
        count(&app, "SELECT count(*) FROM alarms WHERE decided_at IS NULL") == 0
    })
    .await;
    let decided_in = started.elapsed();
    assert_eq!(
        app.query(
            "SELECT count(*), count(DISTINCT alarm_id), sum(decision = 'would_change') FROM decisions"
        ),
        [[Value::from(COUNT), Value::from(COUNT), Value::from(COUNT)]],
        "exactly one decision per alarm, each the change the rules ask for"
    );
    assert_eq!(app.fake.put_attempts(), 0, "a dry run sends nothing");
    let requests = app.fake.requests();
    assert_eq!(
        requests.len() as u64,
        COUNT + 1,
        "one read per instance and the catalogue"
    );
    assert_no_429(&requests);
    assert_held_to(&requests, RATE);
    eprintln!("{COUNT} alarms accepted in {accepted_in:?}, all decided in {decided_in:?}");
    app.stop().await;
}

/// Two hundred instances alarm at once, live, at 50 requests per second: each instance is
/// read once, changed with one PUT and polled until done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_live_changes_at_once_get_one_put_each_within_the_rate() {
    const COUNT: u64 = 200;
    const RATE: u32 = 50;
    let _one = ONE_AT_A_TIME.lock().await;
    let started = Instant::now();
    let app = storm_app(COUNT, RATE, true).await;
    alarm_all(&app, COUNT).await;
    until("every change finished", Duration::from_secs(60), || {
        count(
            &app,
            "SELECT count(*) FROM changes WHERE phase NOT IN ('intended', 'submitted')",
        ) == COUNT as i64
    })
    .await;
    let finished_in = started.elapsed();
    assert_eq!(
        app.query(
            "SELECT count(*), count(DISTINCT alarm_id), sum(decision = 'change') FROM decisions"
        ),
        [[Value::from(COUNT), Value::from(COUNT), Value::from(COUNT)]],
        "exactly one decision per alarm, each a change"
    );
    assert_eq!(
        app.query("SELECT phase, count(*) FROM changes GROUP BY phase"),
        [[Value::from("completed"), Value::from(COUNT)]]
    );
    let mut changed: Vec<u64> = app.fake.plan_changes().iter().map(|(id, _)| *id).collect();
    changed.sort_unstable();
    changed.dedup();
    assert_eq!(
        changed.len() as u64,
        COUNT,
        "one accepted change per instance"
    );
    assert_eq!(
        app.fake.put_attempts() as u64,
        COUNT,
        "one PUT per instance"
    );
    let requests = app.fake.requests();
    assert_no_429(&requests);
    assert_held_to(&requests, RATE);
    let metrics = app.metrics().await;
    assert!(!metrics.contains(r#"status="429""#), "{metrics}");
    eprintln!("{COUNT} live changes finished in {finished_in:?}");
    app.stop().await;
}

/// When CloudAMQP does answer 429 (here to the first 30 requests, with `Retry-After: 1`),
/// each costs exactly one retry: the storm does not turn into a retry storm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_answers_cost_one_retry_each_and_no_cascade() {
    const COUNT: u64 = 200;
    const RATE: u32 = 50;
    const LIMITED: usize = 30;
    let _one = ONE_AT_A_TIME.lock().await;
    let app = storm_app(COUNT, RATE, false).await;
    app.fake.inject(
        FaultRule::once(Fault::TooManyRequests {
            retry_after: Some(1),
        })
        .times(LIMITED),
    );
    alarm_all(&app, COUNT).await;
    until("every alarm decided", Duration::from_secs(60), || {
        count(&app, "SELECT count(*) FROM decisions") == COUNT as i64
    })
    .await;
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM decisions WHERE decision = 'would_change'"
        ),
        COUNT as i64,
        "every alarm decided on its plan, none gave up"
    );
    let requests = app.fake.requests();
    let limited = requests.iter().filter(|r| r.status == 429).count();
    assert_eq!(limited, LIMITED);
    // A dry run reads each instance once and the catalogue once; each 429 adds one retry.
    assert_eq!(requests.len(), COUNT as usize + 1 + LIMITED);
    assert_held_to(&requests, RATE);
    app.stop().await;
}
