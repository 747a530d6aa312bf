//! Durable accept against the real PostgreSQL: what the database holds after a batch.

use std::time::{Duration, SystemTime};

use jiff::Timestamp;

use super::PgError;
use super::accept::{AcceptItem, record_alarms};
use super::testdb::TestDb;
use crate::store::{DecisionKind, NewAlarm, NewDecision};

const CLAIM: Duration = Duration::from_secs(60);

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_796_000_000 + seconds).unwrap()
}

pub(super) fn alarm(n: i64) -> NewAlarm {
    NewAlarm {
        // A microsecond part, which PostgreSQL keeps.
        received_at: at(n)
            .checked_add(jiff::SignedDuration::from_micros(123_456))
            .unwrap(),
        remote_addr: (n % 2 == 0).then(|| format!("10.0.0.{n}")),
        body: format!("{{\"n\":{n}}}"),
        kind: if n % 4 == 0 { "cpu" } else { "memory" }.into(),
        value: (n % 5 != 0).then_some(n as f64 + 0.5),
        instance: Some(format!("{}", 100 + n % 3)),
        resolved: n % 7 == 0,
        message: Some(format!("alarm {n}")),
        triggered_at: (n % 2 == 1).then(|| "2026-12-03T07:00:00Z".to_owned()),
    }
}

pub(super) fn decision(n: i64) -> NewDecision {
    NewDecision {
        at: at(n + 1),
        instance_id: Some(100 + (n % 3) as u64),
        plan: Some("bunny-1".into()),
        kind: if n % 2 == 0 {
            DecisionKind::Skip
        } else {
            DecisionKind::WouldChange
        },
        reason: (n % 2 == 0).then(|| "cooldown".to_owned()),
        rule: Some("memory-high".into()),
        from_plan: (n % 2 == 1).then(|| "bunny-1".to_owned()),
        to_plan: (n % 2 == 1).then(|| "hare-1".to_owned()),
        detail: format!("decision {n}"),
    }
}

fn item(n: i64, decided: bool) -> AcceptItem {
    AcceptItem {
        alarm: alarm(n),
        decision: decided.then(|| decision(n)),
        owner: "replica-a".into(),
        claim: CLAIM,
    }
}

fn micros(at: Timestamp) -> SystemTime {
    super::rows::db_time(at).unwrap()
}

/// Microseconds since the epoch: PostgreSQL's precision.
fn us(at: SystemTime) -> i128 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i128
}

#[tokio::test]
async fn a_batch_of_fifty_commits_in_order_with_decisions_in_their_rows() {
    let db = TestDb::migrated().await;
    let mut client = db.client().await;
    let batch: Vec<AcceptItem> = (0..50).map(|n| item(n, n % 3 == 0)).collect();

    let ids = record_alarms(&mut client, &batch).await.unwrap();

    assert_eq!(ids.len(), 50);
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids in batch order: {ids:?}"
    );
    // Committed: another connection sees every row.
    let other = db.client().await;
    let now: SystemTime = other.query_one("SELECT now()", &[]).await.unwrap().get(0);
    let rows = other
        .query("SELECT * FROM alarms ORDER BY id", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 50);
    for ((row, item), id) in rows.iter().zip(&batch).zip(&ids) {
        let a = &item.alarm;
        assert_eq!(row.get::<_, i64>("id"), *id);
        let received_at: SystemTime = row.get("received_at");
        assert_eq!(us(received_at), us(micros(a.received_at)));
        assert_eq!(row.get::<_, Option<String>>("remote_addr"), a.remote_addr);
        assert_eq!(row.get::<_, String>("kind"), a.kind);
        assert_eq!(row.get::<_, Option<f64>>("value"), a.value);
        assert_eq!(row.get::<_, Option<String>>("instance"), a.instance);
        assert_eq!(row.get::<_, bool>("resolved"), a.resolved);
        assert_eq!(row.get::<_, Option<String>>("message"), a.message);
        assert_eq!(row.get::<_, Option<String>>("triggered_at"), a.triggered_at);
        assert_eq!(row.get::<_, String>("body"), a.body);
        let decided_at: Option<SystemTime> = row.get("decided_at");
        let owner: Option<String> = row.get("owner");
        let claimed_until: Option<SystemTime> = row.get("claimed_until");
        let fence: Option<i64> = row.get("fence");
        match &item.decision {
            Some(d) => {
                assert_eq!(decided_at.map(us), Some(us(micros(d.at))));
                assert_eq!(
                    row.get::<_, Option<i64>>("instance_id"),
                    d.instance_id.map(|id| id as i64)
                );
                assert_eq!(row.get::<_, Option<String>>("plan"), d.plan);
                assert_eq!(
                    row.get::<_, Option<String>>("decision").as_deref(),
                    Some(d.kind.as_str())
                );
                assert_eq!(row.get::<_, Option<String>>("reason"), d.reason);
                assert_eq!(row.get::<_, Option<String>>("rule"), d.rule);
                assert_eq!(row.get::<_, Option<String>>("from_plan"), d.from_plan);
                assert_eq!(row.get::<_, Option<String>>("to_plan"), d.to_plan);
                assert_eq!(
                    row.get::<_, Option<String>>("detail").as_deref(),
                    Some(d.detail.as_str())
                );
                // Decided: no one needs to claim it.
                assert_eq!((owner, claimed_until, fence), (None, None, None));
            }
            None => {
                assert_eq!(decided_at, None);
                assert_eq!(row.get::<_, Option<String>>("decision"), None);
                assert_eq!(row.get::<_, Option<i64>>("instance_id"), None);
                assert_eq!(row.get::<_, Option<String>>("detail"), None);
                assert_eq!(owner.as_deref(), Some("replica-a"));
                let until = claimed_until.expect("an undecided alarm is claimed");
                // About a claim ahead of the database's clock.
                assert!(until > now + CLAIM / 2, "claimed for the claim's length");
                assert!(until < now + CLAIM * 2);
                assert!(fence.is_some());
            }
        }
    }
    // Each claim has its own fencing number.
    let fences: i64 = other
        .query_one(
            "SELECT count(DISTINCT fence) FROM alarms WHERE fence IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        fences,
        batch.iter().filter(|i| i.decision.is_none()).count() as i64
    );
}

#[tokio::test]
async fn a_batch_with_a_row_the_database_refuses_commits_nothing_of_it() {
    let db = TestDb::migrated().await;
    let mut client = db.client().await;
    // A constraint the 49th row breaks (the schema's own cannot be broken through the
    // types: `decision` is an enum, the NOT NULL columns are not `Option`s).
    client
        .batch_execute(
            "ALTER TABLE alarms ADD CONSTRAINT no_poison CHECK (body NOT LIKE '%poison%')",
        )
        .await
        .unwrap();
    let mut batch: Vec<AcceptItem> = (0..50).map(|n| item(n, n % 3 == 0)).collect();
    batch[48].alarm.body = "{\"poison\":\"secret-value\"}".into();

    let err = record_alarms(&mut client, &batch).await.unwrap_err();

    assert!(matches!(err, PgError::Refused(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("no_poison"), "{text}");
    assert!(!text.contains("secret-value"), "no parameter in {text}");
    assert!(
        !text.contains(db.name()) && !text.contains("postgres://"),
        "{text}"
    );
    let other = db.client().await;
    let count: i64 = other
        .query_one("SELECT count(*) FROM alarms", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 0, "nothing of the batch is stored");

    // A NUL byte is refused by the server's text type: the same, nothing kept.
    let mut batch: Vec<AcceptItem> = (0..5).map(|n| item(n, n == 0)).collect();
    batch[3].alarm.message = Some("a\0b".into());
    let err = record_alarms(&mut client, &batch).await.unwrap_err();
    assert!(!err.to_string().contains("postgres://"), "{err}");
    let count: i64 = other
        .query_one("SELECT count(*) FROM alarms", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 0);

    // The connection is still usable: the next batch commits.
    let ids = record_alarms(&mut client, &[item(1, false), item(2, true)])
        .await
        .unwrap();
    let stored: Vec<(i64, String)> = other
        .query("SELECT id, body FROM alarms ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(
        stored,
        vec![(ids[0], alarm(1).body), (ids[1], alarm(2).body)]
    );
}

#[tokio::test]
async fn an_empty_batch_is_nothing() {
    let db = TestDb::migrated().await;
    let mut client = db.client().await;
    assert_eq!(
        record_alarms(&mut client, &[]).await.unwrap(),
        Vec::<i64>::new()
    );
}

#[tokio::test]
async fn an_accepted_alarm_is_the_acceptors_until_its_claim_ends_then_a_survivors() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let mut accepting = pool.get().await.unwrap();
    let survivor = pool.get().await.unwrap();
    let short = |n: i64, decided: bool| AcceptItem {
        claim: Duration::from_millis(300),
        ..item(n, decided)
    };
    // Received long ago (the alarms' own times): only the claim holds them back.
    let ids = record_alarms(
        &mut accepting,
        &[short(1, false), short(2, true), short(3, false)],
    )
    .await
    .unwrap();

    let early =
        super::claim::claim_undecided_alarms(&survivor, "replica-b", CLAIM, 10, Duration::ZERO)
            .await
            .unwrap();
    assert!(early.is_empty(), "claimed by the acceptor: {early:?}");

    tokio::time::sleep(Duration::from_millis(600)).await;
    let taken =
        super::claim::claim_undecided_alarms(&survivor, "replica-b", CLAIM, 10, Duration::ZERO)
            .await
            .unwrap();
    let taken: Vec<(i64, Option<&str>)> = taken
        .iter()
        .map(|a| (a.id, a.previous_owner.as_deref()))
        .collect();
    // The decided one is no one's to take.
    assert_eq!(
        taken,
        [(ids[0], Some("replica-a")), (ids[2], Some("replica-a"))]
    );
}

#[tokio::test]
async fn a_value_that_is_no_number_is_stored_as_none_and_a_huge_instance_id_refuses_the_batch() {
    let db = TestDb::migrated().await;
    let mut client = db.client().await;
    let mut nan = item(1, false);
    nan.alarm.value = Some(f64::NAN);
    let mut infinite = item(2, true);
    infinite.alarm.value = Some(f64::INFINITY);
    let ids = record_alarms(&mut client, &[nan, infinite]).await.unwrap();
    let values: Vec<(i64, Option<f64>)> = client
        .query("SELECT id, value FROM alarms ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(values, [(ids[0], None), (ids[1], None)]);

    let mut huge = item(3, true);
    huge.decision.as_mut().unwrap().instance_id = Some(u64::MAX);
    let err = record_alarms(&mut client, &[item(4, false), huge])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("too large"), "{err}");
    let count: i64 = client
        .query_one("SELECT count(*) FROM alarms", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 2, "nothing of the refused batch");
}
