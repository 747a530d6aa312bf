//! Several daemons (the built binary, real processes) on one PostgreSQL database, against
//! one fake CloudAMQP. After each scenario the invariants of the contract are checked on
//! the database: every alarm answered 202 is stored and decided once, at most one change
//! is open per instance and CloudAMQP saw one PUT for the spike, and fencing numbers only
//! grow.
//!
//! Each test makes a database of its own on the PostgreSQL that `AUTOSCALER_TEST_PG_URL`
//! names (default 127.0.0.1:5432 as `postgres`), and drops it at the end.

#[path = "replicas_support/mod.rs"]
mod replicas_support;
#[path = "state_query/mod.rs"]
mod state_query;
#[path = "process_support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use cloudamqp_autoscaler::fake::SeedInstance;
use cloudamqp_autoscaler::fake::Timeline;
use replicas_support::{Db, Proxy, TlsProxy};
use serde_json::Value;
use support::{Daemon, ID, MEMORY_85, fake, fake_with, workdir};

/// Short, so takeovers happen within a test's patience.
const LEASE: &str = "3s";

fn slow_change() -> Timeline {
    Timeline {
        lag: Duration::from_millis(300),
        reconfigure: Duration::from_secs(4),
        stuck: false,
    }
}

fn instance(status: &Value) -> &Value {
    &status["instances"][ID.to_string()]
}

/// A replica on `url` (its own work directory, whose state directory stays unused).
fn replica(dir: &std::path::Path, fake_url: &str, url: &str, live: bool) -> Daemon {
    replica_with(dir, fake_url, url, live, &[])
}

/// [`replica`] with more settings (`extra` wins over the defaults here).
fn replica_with(
    dir: &std::path::Path,
    fake_url: &str,
    url: &str,
    live: bool,
    extra: &[(&str, &str)],
) -> Daemon {
    let mut env = vec![
        ("AUTOSCALER__STATE__DATABASE_URL", url),
        ("AUTOSCALER__STATE__LEASE", LEASE),
        // Within the takeover bound of a 3 s lease (`check` refuses more).
        ("AUTOSCALER__CLOUDAMQP__REQUEST_TIMEOUT", "4s"),
    ];
    env.extend_from_slice(extra);
    Daemon::start_with(dir, fake_url, live, &env)
}

async fn until(
    what: &str,
    within: Duration,
    daemons: &[&Daemon],
    mut done: impl AsyncFnMut() -> bool,
) {
    let started = Instant::now();
    while !done().await {
        assert!(
            started.elapsed() < within,
            "timed out waiting for {what}:\n{}",
            logs(daemons)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the one change in the database is held by the replica `id`.
async fn until_held_by(db: &Db, id: &str, within: Duration, daemons: &[&Daemon]) {
    until(
        "the change held by the survivor",
        within,
        daemons,
        async || {
            let rows = db.query("SELECT owner FROM changes").await;
            rows.first().map(|row| row.get::<_, String>(0)).as_deref() == Some(id)
        },
    )
    .await;
}

/// Waits until `daemon`'s `/status` shows the instance's last change ended with `result`.
async fn until_last_change(daemon: &Daemon, result: &str, within: Duration) {
    until(
        &format!("the last change {result}"),
        within,
        &[daemon],
        async || instance(&daemon.status().await)["last_change"]["result"] == result,
    )
    .await;
}

/// The contract's invariants on the shared database, once every alarm is decided.
async fn invariants(db: &Db, accepted: &[i64], daemons: &[&Daemon]) {
    until(
        "every accepted alarm decided",
        Duration::from_secs(40),
        daemons,
        async || {
            let rows = db
                .query("SELECT count(*) FROM alarms WHERE decided_at IS NULL")
                .await;
            rows[0].get::<_, i64>(0) == 0
        },
    )
    .await;
    let stored: Vec<i64> = db
        .query("SELECT id FROM alarms ORDER BY id")
        .await
        .iter()
        .map(|row| row.get(0))
        .collect();
    for id in accepted {
        assert!(
            stored.contains(id),
            "alarm {id} was answered 202 and is not stored"
        );
    }
    let open = db
        .query("SELECT count(*) FROM changes WHERE phase IN ('intended', 'submitted')")
        .await;
    assert!(open[0].get::<_, i64>(0) <= 1, "more than one open change");
    let fences: Vec<i64> = db
        .query("SELECT fence FROM changes ORDER BY id")
        .await
        .iter()
        .map(|row| row.get(0))
        .collect();
    // Each grant of a lease (an open, a takeover) takes the next number: no two changes
    // ever share one (a change taken over holds a number above every earlier grant, so
    // fences are not in the order of the changes' ids).
    let mut distinct = fences.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        fences.len(),
        "a fence granted twice: {fences:?}"
    );
    // And every takeover the replicas logged moved its change's fence up.
    for line in logs(daemons).lines() {
        let Ok(entry) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if let (Some(before), Some(after)) =
            (entry["previous_fence"].as_i64(), entry["fence"].as_i64())
        {
            assert!(after > before, "a takeover did not raise the fence: {line}");
        }
    }
}

/// The daemon's log lines, for a failed assertion.
fn logs(daemons: &[&Daemon]) -> String {
    daemons
        .iter()
        .map(|daemon| daemon.log())
        .collect::<Vec<_>>()
        .join("\n----\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_spike_split_across_two_replicas_makes_one_put() {
    let db = Db::new().await;
    let (fake, running) = fake(slow_change()).await;
    let (dir_a, dir_b) = (workdir(), workdir());
    let a = replica(dir_a.path(), &running.base_url(), &db.url(), true);
    let b = replica(dir_b.path(), &running.base_url(), &db.url(), true);
    let mut accepted = Vec::new();
    for round in 0..4 {
        let (one, two) = tokio::join!(a.post_alarm(MEMORY_85), b.post_alarm(MEMORY_85));
        for (status, id) in [one, two] {
            assert_eq!(status, 202, "round {round}: {}", logs(&[&a, &b]));
            accepted.push(id.unwrap());
        }
    }
    until(
        "the change completed",
        Duration::from_secs(30),
        &[&a, &b],
        async || instance(&b.status().await)["last_change"]["result"] == "completed",
    )
    .await;
    // A reminder on either replica after the change: the cooldown, shared.
    for daemon in [&a, &b] {
        let (status, id) = daemon.post_alarm(MEMORY_85).await;
        assert_eq!(status, 202);
        accepted.push(id.unwrap());
    }
    invariants(&db, &accepted, &[&a, &b]).await;
    assert_eq!(fake.put_attempts(), 1, "{}", logs(&[&a, &b]));
    assert_eq!(fake.plan_changes(), vec![(ID, "hare-1".to_owned())]);
    let status = a.status().await;
    assert_eq!(
        instance(&status)["last_change"]["to"],
        "hare-1",
        "{status:#}"
    );
    assert_eq!(
        status["replicas"].as_array().map(Vec::len),
        Some(2),
        "{status:#}"
    );
    assert_ne!(status["replica"], b.status().await["replica"]);
    // The history is the database's: each replica shows every alarm, whichever took it.
    for daemon in [&a, &b] {
        let history: Value = reqwest::get(format!("{}/history?instance={ID}", daemon.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let events = history["events"].as_array().unwrap();
        let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
        assert!(kinds.contains(&"change"), "{history:#}");
        assert_eq!(
            kinds.iter().filter(|kind| **kind == "decision").count(),
            accepted.len(),
            "one decision per alarm, on either replica: {history:#}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_killed_after_its_put_reached_cloudamqp_is_followed_never_sent_again() {
    use cloudamqp_autoscaler::fake::{Fault, FaultRule};
    let db = Db::new().await;
    let (fake, running) = fake(slow_change()).await;
    let (dir_a, dir_b) = (workdir(), workdir());
    // Short request timeouts, so the lease lengthened to cover the PUT stays short too.
    let url = db.url();
    let env = [
        ("AUTOSCALER__STATE__DATABASE_URL", url.as_str()),
        ("AUTOSCALER__STATE__LEASE", LEASE),
        ("AUTOSCALER__CLOUDAMQP__REQUEST_TIMEOUT", "2s"),
        ("AUTOSCALER__CLOUDAMQP__CONNECT_TIMEOUT", "1s"),
    ];
    let mut a = Daemon::start_with(dir_a.path(), &running.base_url(), true, &env);
    let b = Daemon::start_with(dir_b.path(), &running.base_url(), true, &env);
    // The fake applies the PUT, then answers slowly: A dies before it hears back.
    fake.inject(FaultRule::once(Fault::Slow(Duration::from_secs(30))).method("PUT"));
    let (status, id) = a.post_alarm(MEMORY_85).await;
    assert_eq!(status, 202);
    until(
        "the PUT reached CloudAMQP",
        Duration::from_secs(10),
        &[&a],
        async || fake.put_attempts() == 1,
    )
    .await;
    a.signal("KILL");
    a.wait();
    until(
        "the survivor followed the change to its end",
        Duration::from_secs(30),
        &[&b],
        async || !instance(&b.status().await)["last_change"].is_null(),
    )
    .await;
    invariants(&db, &[id.unwrap()], &[&b]).await;
    assert_eq!(fake.put_attempts(), 1, "never sent again: {}", b.log());
    assert_eq!(fake.plan_changes(), vec![(ID, "hare-1".to_owned())]);
    assert_eq!(
        instance(&b.status().await)["last_change"]["result"],
        "completed",
        "{}",
        b.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_killed_after_the_intent_and_before_the_put_is_followed_and_never_sent() {
    // As in the crash matrix's step (b): one API request per second holds the owner's PUT
    // behind its catalogue read for about a second, the window the kill lands in (seen in
    // the database and at the fake); a run that misses it is repeated.
    for attempt in 1..=5 {
        let db = Db::new().await;
        let (fake, running) = fake(Timeline::instant()).await;
        let (dir_a, dir_b) = (workdir(), workdir());
        let slow = [("AUTOSCALER__CLOUDAMQP__REQUESTS_PER_SECOND", "1")];
        let mut a = replica_with(dir_a.path(), &running.base_url(), &db.url(), true, &slow);
        let b = replica(dir_b.path(), &running.base_url(), &db.url(), true);
        let (status, id) = a.post_alarm(MEMORY_85).await;
        assert_eq!(status, 202);
        let started = Instant::now();
        let caught = loop {
            let phases = db.query("SELECT phase FROM changes").await;
            if fake.put_attempts() != 0 {
                break false;
            }
            if phases.len() == 1 && phases[0].get::<_, String>(0) == "intended" {
                a.signal("KILL");
                break true;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no intent: {}",
                a.log()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let killed = Instant::now();
        a.wait();
        tokio::time::sleep(Duration::from_millis(500)).await;
        if !caught || fake.put_attempts() != 0 {
            eprintln!("attempt {attempt}: the PUT left before the kill; again");
            continue;
        }
        let survivor = b.status().await["replica"].as_str().unwrap().to_owned();
        until_held_by(&db, &survivor, Duration::from_secs(30), &[&b]).await;
        // The owner's lease was lengthened for its PUT (connect + request timeout and
        // margins, 12 s here): within the lease plus 15 s all the same, counted from the kill.
        assert!(killed.elapsed() < Duration::from_secs(18), "{}", b.log());
        until_last_change(&b, "failed", Duration::from_secs(30)).await;
        invariants(&db, &[id.unwrap()], &[&b]).await;
        assert_eq!(
            fake.put_attempts(),
            0,
            "an intended change is never sent by a taker"
        );
        assert_eq!(fake.instance(ID).unwrap().plan, "bunny-1");
        let rows = db
            .query("SELECT owner, phase, needs_attention FROM changes")
            .await;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].get::<_, String>(0), survivor);
        assert_eq!(rows[0].get::<_, String>(1), "failed");
        assert!(rows[0].get::<_, bool>(2), "needs attention");
        return;
    }
    panic!("the kill never landed between the intent and the PUT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_whose_owner_is_killed_is_finished_by_the_survivor_without_a_second_put() {
    let db = Db::new().await;
    let (fake, running) = fake(slow_change()).await;
    let (dir_a, dir_b) = (workdir(), workdir());
    let mut a = replica(dir_a.path(), &running.base_url(), &db.url(), true);
    let b = replica(dir_b.path(), &running.base_url(), &db.url(), true);
    let (status, id) = a.post_alarm(MEMORY_85).await;
    assert_eq!(status, 202);
    a.wait_for("tracking", |s| instance(s)["change"]["phase"] == "tracking")
        .await;
    a.signal("KILL");
    a.wait();
    let killed = Instant::now();
    until_last_change(&b, "completed", Duration::from_secs(25)).await;
    // Within the lease plus 15 s (3 s + 15 s here), counted from the kill.
    assert!(killed.elapsed() < Duration::from_secs(18), "{}", b.log());
    invariants(&db, &[id.unwrap()], &[&b]).await;
    assert_eq!(fake.put_attempts(), 1, "{}", b.log());
    let owners = db
        .query("SELECT owner, phase FROM changes")
        .await
        .iter()
        .map(|row| (row.get::<_, String>(0), row.get::<_, String>(1)))
        .collect::<Vec<_>>();
    let survivor = b.status().await["replica"].as_str().unwrap().to_owned();
    assert_eq!(owners, vec![(survivor, "completed".to_owned())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_stopped_cleanly_hands_its_change_over_at_once_not_a_lease_later() {
    let db = Db::new().await;
    let (fake, running) = fake(Timeline {
        reconfigure: Duration::from_secs(8),
        ..slow_change()
    })
    .await;
    let (dir_a, dir_b) = (workdir(), workdir());
    // A lease far longer than the takeover may take.
    let lease = [("AUTOSCALER__STATE__LEASE", "60s")];
    let mut a = replica_with(dir_a.path(), &running.base_url(), &db.url(), true, &lease);
    let b = replica_with(dir_b.path(), &running.base_url(), &db.url(), true, &lease);
    let (status, id) = a.post_alarm(MEMORY_85).await;
    assert_eq!(status, 202);
    a.wait_for("tracking", |s| instance(s)["change"]["phase"] == "tracking")
        .await;
    let a_id = a.status().await["replica"].as_str().unwrap().to_owned();
    let b_id = b.status().await["replica"].as_str().unwrap().to_owned();
    a.signal("TERM");
    assert_eq!(a.wait(), Some(0), "{}", a.log());
    let stopped = Instant::now();
    let replicas = b.status().await["replicas"].clone();
    assert!(
        !replicas.to_string().contains(&a_id),
        "a replica stopped cleanly is no longer listed: {replicas}"
    );
    until_held_by(&db, &b_id, Duration::from_secs(20), &[&b]).await;
    // The next claim round (every 5 s), not the 60 s lease.
    assert!(stopped.elapsed() < Duration::from_secs(12), "{}", b.log());
    until_last_change(&b, "completed", Duration::from_secs(30)).await;
    invariants(&db, &[id.unwrap()], &[&b]).await;
    assert_eq!(fake.put_attempts(), 1, "{}", b.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_accepted_by_a_replica_killed_before_deciding_is_decided_by_another() {
    use cloudamqp_autoscaler::fake::{Fault, FaultRule};
    let db = Db::new().await;
    let (fake, running) = fake(slow_change()).await;
    let (dir_a, dir_b) = (workdir(), workdir());
    let mut a = replica(dir_a.path(), &running.base_url(), &db.url(), true);
    let b = replica(dir_b.path(), &running.base_url(), &db.url(), true);
    // A's read of the instance hangs: the alarm is accepted, not decided.
    fake.inject(
        FaultRule::once(Fault::Slow(Duration::from_secs(30)))
            .method("GET")
            .path(cloudamqp_autoscaler::fake::PathMatch::Exact(format!(
                "/api/instances/{ID}"
            ))),
    );
    let (status, id) = a.post_alarm(MEMORY_85).await;
    assert_eq!(status, 202);
    until(
        "A reading the instance",
        Duration::from_secs(10),
        &[&a, &b],
        async || {
            fake.requests()
                .iter()
                .any(|r| r.path == format!("/api/instances/{ID}"))
        },
    )
    .await;
    a.signal("KILL");
    a.wait();
    until_last_change(&b, "completed", Duration::from_secs(25)).await;
    invariants(&db, &[id.unwrap()], &[&b]).await;
    assert_eq!(fake.put_attempts(), 1, "{}", b.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_paused_past_its_lease_writes_nothing_when_resumed() {
    let db = Db::new().await;
    let (fake, running) = fake(Timeline {
        lag: Duration::from_millis(300),
        reconfigure: Duration::from_secs(8),
        stuck: false,
    })
    .await;
    let (dir_a, dir_b) = (workdir(), workdir());
    let a = replica(dir_a.path(), &running.base_url(), &db.url(), true);
    let b = replica(dir_b.path(), &running.base_url(), &db.url(), true);
    let a_id = a.status().await["replica"].as_str().unwrap().to_owned();
    let b_id = b.status().await["replica"].as_str().unwrap().to_owned();
    let (status, id) = a.post_alarm(MEMORY_85).await;
    assert_eq!(status, 202);
    a.wait_for("tracking", |s| instance(s)["change"]["phase"] == "tracking")
        .await;
    a.signal("STOP");
    until_held_by(&db, &b_id, Duration::from_secs(20), &[&a, &b]).await;
    a.signal("CONT");
    until(
        "the change completed",
        Duration::from_secs(30),
        &[&a, &b],
        async || instance(&b.status().await)["last_change"]["result"] == "completed",
    )
    .await;
    // A had time to wake up and try.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rows = db.query("SELECT owner, phase FROM changes").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, String>(0), b_id, "{}", a.log());
    assert_ne!(rows[0].get::<_, String>(0), a_id);
    invariants(&db, &[id.unwrap()], &[&a, &b]).await;
    assert_eq!(fake.put_attempts(), 1, "{}", logs(&[&a, &b]));
    assert!(
        a.log().contains("lease"),
        "A says it lost the lease: {}",
        a.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_started_together_migrate_once_and_serve() {
    let db = Db::new().await;
    let (_fake, running) = fake(slow_change()).await;
    let dirs: Vec<_> = (0..3).map(|_| workdir()).collect();
    let url = db.url();
    let base = running.base_url();
    let daemons: Vec<Daemon> = std::thread::scope(|scope| {
        let handles: Vec<_> = dirs
            .iter()
            .map(|dir| scope.spawn(|| replica(dir.path(), &base, &url, true)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let versions: Vec<i32> = db
        .query("SELECT version FROM schema_version ORDER BY version")
        .await
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(versions, (1..=versions.len() as i32).collect::<Vec<_>>());
    for daemon in &daemons {
        let (status, _) = daemon.post_alarm(MEMORY_85).await;
        assert_eq!(status, 202, "{}", daemon.log());
    }
    let status = daemons[0].status().await;
    assert_eq!(
        status["replicas"].as_array().map(Vec::len),
        Some(3),
        "{status:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_in_another_mode_is_refused() {
    let db = Db::new().await;
    let (_fake, running) = fake(slow_change()).await;
    let (dir_a, dir_b) = (workdir(), workdir());
    let _a = replica(dir_a.path(), &running.base_url(), &db.url(), true);
    let mut command = support::command(
        dir_b.path(),
        &running.base_url(),
        false,
        &[("AUTOSCALER__STATE__DATABASE_URL", &db.url())],
    );
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("live = true"), "{stderr}");
    assert!(
        !stderr.contains("postgres://"),
        "the URL is a secret: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_reaches_its_database_over_verified_tls_only() {
    let db = Db::new().await;
    let proxy = TlsProxy::start("127.0.0.1:5432".to_owned()).await;
    // `localhost`, the name the fixture certificate is for.
    let url = format!(
        "postgres://postgres@localhost:{}/{}?sslmode=require",
        proxy.port, db.name
    );
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");
    let (fake, running) = fake(Timeline::instant()).await;
    let (dir_a, dir_b) = (workdir(), workdir());
    let ca = format!("{fixtures}/ca.pem");
    let a = replica_with(
        dir_a.path(),
        &running.base_url(),
        &url,
        true,
        &[("AUTOSCALER__STATE__DATABASE_CA", &ca)],
    );
    let (status, id) = a.post_alarm(MEMORY_85).await;
    assert_eq!(status, 202, "{}", a.log());
    until_last_change(&a, "completed", Duration::from_secs(20)).await;
    invariants(&db, &[id.unwrap()], &[&a]).await;
    assert_eq!(fake.put_attempts(), 1);

    // The same server with a CA that did not sign its certificate: not to be trusted.
    let other = format!("{fixtures}/other-ca.pem");
    let output = support::command(
        dir_b.path(),
        &running.base_url(),
        true,
        &[
            ("AUTOSCALER__STATE__DATABASE_URL", &url),
            ("AUTOSCALER__STATE__DATABASE_CA", &other),
        ],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("not issued by a CA this replica trusts"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("postgres://"),
        "the URL is a secret: {stderr}"
    );
    assert!(!stderr.contains("localhost"), "nor is its host: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_cut_off_answers_503_and_recovers_by_itself() {
    let db = Db::new().await;
    let proxy = Proxy::start("127.0.0.1:5432".to_owned()).await;
    let (_fake, running) = fake(slow_change()).await;
    let dir = workdir();
    let daemon = replica(
        dir.path(),
        &running.base_url(),
        &db.url_via(Some(proxy.port)),
        false,
    );
    let (status, first) = daemon.post_alarm(MEMORY_85).await;
    assert_eq!(status, 202);
    proxy.cut();
    let client = reqwest::Client::new();
    let response = client
        .post(format!(
            "{}/cloudamqp/alarm?token={}",
            daemon.base,
            support::TOKEN
        ))
        .body(MEMORY_85)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503, "{}", daemon.log());
    assert!(response.headers().contains_key("retry-after"));
    until(
        "/readyz 503",
        Duration::from_secs(15),
        &[&daemon],
        async || {
            reqwest::get(format!("{}/readyz", daemon.base))
                .await
                .unwrap()
                .status()
                .as_u16()
                == 503
        },
    )
    .await;
    proxy.restore();
    until(
        "/readyz 200 again",
        Duration::from_secs(15),
        &[&daemon],
        async || {
            reqwest::get(format!("{}/readyz", daemon.base))
                .await
                .unwrap()
                .status()
                .as_u16()
                == 200
        },
    )
    .await;
    let (status, second) = daemon.post_alarm(MEMORY_85).await;
    assert_eq!(status, 202, "{}", daemon.log());
    invariants(&db, &[first.unwrap(), second.unwrap()], &[&daemon]).await;
    let stored = db.query("SELECT count(*) FROM alarms").await;
    assert_eq!(
        stored[0].get::<_, i64>(0),
        2,
        "the 503'd alarm is not stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_whose_lease_ran_out_while_the_database_was_away_is_finished_by_its_replica() {
    let db = Db::new().await;
    let proxy = Proxy::start("127.0.0.1:5432".to_owned()).await;
    let (fake, running) = fake(Timeline {
        reconfigure: Duration::from_secs(12),
        ..slow_change()
    })
    .await;
    let dir = workdir();
    let url = db.url_via(Some(proxy.port));
    let daemon = replica(dir.path(), &running.base_url(), &url, true);
    let (status, id) = daemon.post_alarm(MEMORY_85).await;
    assert_eq!(status, 202);
    daemon
        .wait_for("tracking", |s| instance(s)["change"]["phase"] == "tracking")
        .await;
    let before = db.query("SELECT fence FROM changes").await[0].get::<_, i64>(0);
    // Away for longer than the 3 s lease: when the database is back, the lease is lost,
    // and no other replica took the change, so this one claims it back.
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(5)).await;
    proxy.restore();
    until(
        "the change finished by the replica that claimed it back",
        Duration::from_secs(40),
        &[&daemon],
        async || {
            let rows = db.query("SELECT phase, fence FROM changes").await;
            rows[0].get::<_, String>(0) == "completed" && rows[0].get::<_, i64>(1) > before
        },
    )
    .await;
    invariants(&db, &[id.unwrap()], &[&daemon]).await;
    assert_eq!(fake.put_attempts(), 1, "{}", daemon.log());
    let log = daemon.log();
    assert!(
        log.contains("taking over a change whose lease ended"),
        "{log}"
    );
    // The work started under the old lease stopped (a second tracker would be a second
    // writer of the change).
    assert!(
        log.contains("this replica lost the change's lease"),
        "{log}"
    );
}

/// Three replicas, three instances, alarms to any replica, and a `kill -9` of a random
/// replica at a random moment (then a new process in its place) eight times over: every
/// alarm answered 202 is stored and decided once, each instance gets at most one change
/// and CloudAMQP at most one PUT for it, every change ends, fences only grow. The seed is
/// printed; `CHAOS_SEED=<seed>` replays a run's choices (not its timing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_killed_at_random_moments_keep_every_promise() {
    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("chaos seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let db = Db::new().await;
    let ids = [ID, ID + 1, ID + 2];
    let (fake, running) = fake_with(
        slow_change(),
        ids.iter()
            .map(|id| SeedInstance::new(*id, &format!("prod-{id}"), "bunny-1"))
            .collect(),
    )
    .await;
    let dirs: Vec<_> = (0..3).map(|_| workdir()).collect();
    let start = |dir: &tempfile::TempDir| replica(dir.path(), &running.base_url(), &db.url(), true);
    let mut replicas: Vec<Daemon> = dirs.iter().map(start).collect();
    let mut accepted = Vec::new();
    for _ in 0..8 {
        for _ in 0..3 {
            let id = ids[rng.usize(..ids.len())];
            let body = format!(r#"{{"alarm_type":"memory","value":85,"instance_id":{id}}}"#);
            let (status, alarm) = replicas[rng.usize(..replicas.len())]
                .post_alarm(&body)
                .await;
            if status == 202 {
                accepted.push(alarm.unwrap());
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.u64(0..1500))).await;
        let victim = rng.usize(..replicas.len());
        replicas[victim].signal("KILL");
        replicas[victim].wait();
        replicas[victim] = start(&dirs[victim]);
    }
    let all: Vec<&Daemon> = replicas.iter().collect();
    until(
        "every change ended",
        Duration::from_secs(60),
        &all,
        async || {
            let open = db
                .query("SELECT count(*) FROM changes WHERE phase IN ('intended', 'submitted')")
                .await;
            let undecided = db
                .query("SELECT count(*) FROM alarms WHERE decided_at IS NULL")
                .await;
            open[0].get::<_, i64>(0) == 0 && undecided[0].get::<_, i64>(0) == 0
        },
    )
    .await;
    invariants(&db, &accepted, &all).await;
    let puts = fake.requests();
    for id in ids {
        let sent = puts
            .iter()
            .filter(|r| r.method == "PUT" && r.path.contains(&id.to_string()))
            .count();
        let changes = db
            .query(&format!(
                "SELECT phase, concat_ws(' | ', id, owner, fence, alarm_id, intended_at, finished_at, detail) \
                   FROM changes WHERE instance_id = {id} AND NOT dry_run ORDER BY id"
            ))
            .await;
        let shown: Vec<String> = changes.iter().map(|row| row.get(1)).collect();
        assert!(
            changes.len() <= 1,
            "instance {id}: {} changes (seed {seed}): {shown:#?}\n{}",
            changes.len(),
            logs(&all)
        );
        assert!(sent <= 1, "instance {id}: {sent} PUTs (seed {seed})");
        let completed =
            changes.first().map(|row| row.get::<_, String>(0)) == Some("completed".into());
        assert_eq!(
            completed,
            sent == 1 && fake.instance(id).unwrap().plan == "hare-1",
            "instance {id}: a change completed exactly when its one PUT was sent (seed {seed})"
        );
    }
    assert!(!accepted.is_empty());
}

/// A hundred instances alarming at once, split across two replicas (dry runs: each
/// decision records a change, as a live one would). Decisions that start changes race for
/// the one version of the shared state; a loser decides again on what it already read,
/// taking turns with its replica's other retries, so none has to leave its alarm to its
/// claim, and each instance gets one change. Prints how long it took (BENCHMARKS.md);
/// `STORM_INSTANCES` for another size:
/// `cargo test --release --test replicas -- --nocapture storm_on_two_replicas`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_on_two_replicas() {
    // `STORM_INSTANCES` for another size.
    let count: u64 = std::env::var("STORM_INSTANCES")
        .ok()
        .and_then(|count| count.parse().ok())
        .unwrap_or(100);
    let db = Db::new().await;
    let ids: Vec<u64> = (0..count).map(|i| 500_000 + i).collect();
    let (_fake, running) = fake_with(
        slow_change(),
        ids.iter()
            .map(|id| SeedInstance::new(*id, &format!("storm-{id}"), "bunny-1"))
            .collect(),
    )
    .await;
    let (dir_a, dir_b) = (workdir(), workdir());
    let rps = [("AUTOSCALER__CLOUDAMQP__REQUESTS_PER_SECOND", "100")];
    let a = replica_with(dir_a.path(), &running.base_url(), &db.url(), false, &rps);
    let b = replica_with(dir_b.path(), &running.base_url(), &db.url(), false, &rps);
    let started = Instant::now();
    let posts = ids.iter().enumerate().map(|(i, id)| {
        let target = if i % 2 == 0 { &a } else { &b };
        let body = format!(r#"{{"alarm_type":"memory","value":85,"instance_id":{id}}}"#);
        async move { target.post_alarm(&body).await }
    });
    use futures_util::StreamExt;
    let answers: Vec<_> = futures_util::stream::iter(posts)
        .buffer_unordered(64)
        .collect()
        .await;
    assert!(answers.iter().all(|(status, _)| *status == 202));
    let accepted = started.elapsed();
    until(
        "every alarm decided",
        Duration::from_secs(300),
        &[&a, &b],
        async || {
            db.query("SELECT count(*) FROM alarms WHERE decided_at IS NULL")
                .await[0]
                .get::<_, i64>(0)
                == 0
        },
    )
    .await;
    let decided = started.elapsed();
    let changes = db.query("SELECT count(*) FROM changes").await[0].get::<_, i64>(0);
    let log = logs(&[&a, &b]);
    let lost_races = log.matches("kept moving under this decision").count();
    let stale = log
        .matches("a decision rested on state another replica changed")
        .count();
    eprintln!(
        "{count} alarms: accepted in {accepted:?}, all decided in {decided:?}; {changes} changes; \
         {stale} stale decisions retried, {lost_races} left to their claim"
    );
    assert_eq!(changes, count as i64, "one change per instance");
    let per_instance = db
        .query("SELECT count(DISTINCT instance_id) FROM changes")
        .await;
    assert_eq!(per_instance[0].get::<_, i64>(0), count as i64);
    assert_eq!(lost_races, 0, "decisions left to their claim:\n{log}");
    let ids: Vec<i64> = answers.iter().filter_map(|(_, id)| *id).collect();
    invariants(&db, &ids, &[&a, &b]).await;
}

/// A measurement, not a check (BENCHMARKS.md, "replicas"): how long after a `kill -9` of
/// the owner of a change in flight a survivor holds it, over 20 kills.
/// `cargo test --release --test replicas -- --ignored --nocapture takeover_time`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run it on purpose"]
async fn takeover_time_after_kill_9() {
    let mut took = Vec::new();
    for _ in 0..20 {
        let db = Db::new().await;
        let (_fake, running) = fake(slow_change()).await;
        let (dir_a, dir_b) = (workdir(), workdir());
        let mut a = replica(dir_a.path(), &running.base_url(), &db.url(), true);
        let b = replica(dir_b.path(), &running.base_url(), &db.url(), true);
        let b_id = b.status().await["replica"].as_str().unwrap().to_owned();
        assert_eq!(a.post_alarm(MEMORY_85).await.0, 202);
        a.wait_for("tracking", |s| instance(s)["change"]["phase"] == "tracking")
            .await;
        a.signal("KILL");
        let killed = Instant::now();
        a.wait();
        until_held_by(&db, &b_id, Duration::from_secs(30), &[&b]).await;
        took.push(killed.elapsed());
    }
    took.sort();
    println!(
        "takeover after kill -9 with state.lease = {LEASE}: median {:?}, worst {:?}, best {:?} (20 kills)",
        took[took.len() / 2],
        took[took.len() - 1],
        took[0]
    );
}
