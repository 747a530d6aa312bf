//! The lease primitives against the real PostgreSQL: each test asserts what the database
//! holds afterwards, not only what the call answered.

use std::time::{Duration, Instant, SystemTime};

use jiff::Timestamp;

use super::claim::claim_expired;
use super::lease::{
    Deadline, Held, LeaseError, finish, mark_submitted, mark_unsent, open_change, renew, renew_many,
};
use super::testdb::{TestDb, new_change};
use crate::store::{ChangeFinish, Phase};

const LONG: Duration = Duration::from_secs(60);
/// Short enough to wait out; the database's clock decides when it is over.
const SHORT: Duration = Duration::from_millis(200);
/// Past [`SHORT`], with room for a slow machine.
const PAST_SHORT: Duration = Duration::from_millis(400);

fn completed() -> ChangeFinish {
    ChangeFinish {
        phase: Phase::Completed,
        finished_at: Timestamp::now(),
        detail: Some("the plan is hare-1".into()),
        needs_attention: false,
    }
}

/// `(phase, owner, fence, lease_until, accepted_at, finished_at, unsent)` of a change.
type Stored = (
    String,
    String,
    i64,
    SystemTime,
    Option<SystemTime>,
    Option<SystemTime>,
    bool,
);

async fn stored(client: &tokio_postgres::Client, id: i64) -> Stored {
    let row = client
        .query_one(
            "SELECT phase, owner, fence, lease_until, accepted_at, finished_at, unsent \
             FROM changes WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    (
        row.get(0),
        row.get(1),
        row.get(2),
        row.get(3),
        row.get(4),
        row.get(5),
        row.get(6),
    )
}

#[tokio::test]
async fn a_second_open_change_for_an_instance_is_busy_and_another_instance_is_not() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let a = pool.get().await.unwrap();
    let mut b = pool.get().await.unwrap();

    let held = open_change(&a, &new_change(7), "a", LONG).await.unwrap();
    let busy = open_change(&b, &new_change(7), "b", LONG).await;
    assert_eq!(busy.unwrap_err(), LeaseError::Busy { instance_id: 7 });
    let other = open_change(&b, &new_change(8), "b", LONG).await.unwrap();
    assert!(other.fence > held.fence);

    // `Busy` inside a transaction leaves it usable: the rest of a batch still commits.
    let tx = b.transaction().await.unwrap();
    let busy = open_change(&tx, &new_change(7), "b", LONG).await;
    assert!(matches!(busy, Err(LeaseError::Busy { instance_id: 7 })));
    tx.execute(
        "INSERT INTO instances (id, plan, updated_at) VALUES (7, 'bunny-1', now())",
        &[],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let owners: Vec<(i64, String)> = a
        .query(
            "SELECT instance_id, owner FROM changes \
             WHERE phase IN ('intended', 'submitted') ORDER BY instance_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(owners, [(7, "a".to_owned()), (8, "b".to_owned())]);
    let instances: i64 = a
        .query_one("SELECT count(*) FROM instances WHERE id = 7", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(instances, 1);

    // Finished, the change frees the instance.
    finish(&a, &held, &completed()).await.unwrap();
    let next = open_change(&b, &new_change(7), "b", LONG).await.unwrap();
    assert!(next.fence > other.fence);
}

#[tokio::test]
async fn renew_by_another_owner_or_with_an_old_fence_holds_nothing() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let client = pool.get().await.unwrap();
    let mut held = open_change(&client, &new_change(7), "a", LONG)
        .await
        .unwrap();
    let before = stored(&client, held.change_id).await;

    let mut stranger = Held {
        owner: "b".into(),
        ..held.clone()
    };
    assert!(!renew(&client, &mut stranger, LONG * 2).await.unwrap());
    let mut stale = Held {
        fence: held.fence - 1,
        ..held.clone()
    };
    assert!(!renew(&client, &mut stale, LONG * 2).await.unwrap());
    assert_eq!(
        stored(&client, held.change_id).await,
        before,
        "nothing moved"
    );
    assert_eq!(
        stale.lease_until, held.lease_until,
        "a refused renewal changes nothing"
    );

    assert!(renew(&client, &mut held, LONG * 2).await.unwrap());
    let after = stored(&client, held.change_id).await;
    assert!(after.3 > before.3, "the lease was extended");
    assert_eq!(SystemTime::try_from(held.lease_until).unwrap(), after.3);
    assert_eq!(
        (after.1, after.2),
        (before.1, before.2),
        "same owner, same fence"
    );
}

#[tokio::test]
async fn renewing_many_at_once_extends_the_held_and_names_the_lost() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let client = pool.get().await.unwrap();
    let mut held = std::collections::HashMap::new();
    for instance in [1, 2, 3, 4] {
        let lease = if instance == 4 { SHORT } else { LONG };
        let change = open_change(&client, &new_change(instance), "a", lease)
            .await
            .unwrap();
        held.insert(change.change_id, change);
    }
    let mut ids: Vec<i64> = held.keys().copied().collect();
    ids.sort();
    // The second taken over by another replica (a new fence), the third finished, the
    // fourth expired.
    client
        .execute(
            "UPDATE changes SET owner = 'b', fence = nextval('fences') WHERE id = $1",
            &[&ids[1]],
        )
        .await
        .unwrap();
    let third = held[&ids[2]].clone();
    finish(&client, &third, &completed()).await.unwrap();
    tokio::time::sleep(PAST_SHORT).await;
    let before: Vec<Stored> =
        futures_util::future::join_all(ids.iter().map(|id| stored(&client, *id))).await;

    let mut lost = renew_many(&client, "a", &mut held, LONG * 2).await.unwrap();
    lost.sort();
    assert_eq!(lost, ids[1..].to_vec());
    let first = stored(&client, ids[0]).await;
    assert!(first.3 > before[0].3, "the held lease was extended");
    assert_eq!(
        SystemTime::try_from(held[&ids[0]].lease_until).unwrap(),
        first.3
    );
    for (id, before) in ids[1..].iter().zip(&before[1..]) {
        assert_eq!(&stored(&client, *id).await, before, "nothing moved on {id}");
    }
    assert!(
        renew_many(&client, "a", &mut std::collections::HashMap::new(), LONG)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn writes_after_the_lease_expired_are_lost_and_change_nothing() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let client = pool.get().await.unwrap();
    let mut held = open_change(&client, &new_change(7), "a", SHORT)
        .await
        .unwrap();
    let before = stored(&client, held.change_id).await;
    tokio::time::sleep(PAST_SHORT).await;

    let lost = LeaseError::LeaseLost {
        change_id: held.change_id,
    };
    assert_eq!(
        mark_submitted(&client, &held, Timestamp::now()).await,
        Err(lost.clone())
    );
    assert_eq!(mark_unsent(&client, &held, true).await, Err(lost.clone()));
    assert_eq!(finish(&client, &held, &completed()).await, Err(lost));
    assert!(
        !renew(&client, &mut held, LONG).await.unwrap(),
        "expired is lost"
    );

    assert_eq!(stored(&client, held.change_id).await, before);
}

#[tokio::test]
async fn a_replaced_owner_writes_nothing_and_the_new_one_finishes() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let client = pool.get().await.unwrap();
    let held = open_change(&client, &new_change(7), "a", SHORT)
        .await
        .unwrap();
    tokio::time::sleep(PAST_SHORT).await;
    let claimed = claim_expired(&client, "b", LONG, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let taker = &claimed[0].held;
    assert!(taker.fence > held.fence);

    let lost = finish(&client, &held, &completed()).await;
    assert_eq!(
        lost,
        Err(LeaseError::LeaseLost {
            change_id: held.change_id
        })
    );
    let (phase, owner, fence, ..) = stored(&client, held.change_id).await;
    assert_eq!(
        (phase.as_str(), owner.as_str(), fence),
        ("intended", "b", taker.fence)
    );

    finish(&client, taker, &completed()).await.unwrap();
    let (phase, owner, fence, _, _, finished_at, _) = stored(&client, held.change_id).await;
    assert_eq!(
        (phase.as_str(), owner.as_str(), fence),
        ("completed", "b", taker.fence)
    );
    assert!(finished_at.is_some());
}

/// A wrong transition by the holder is refused as such, not as a lost lease.
#[tokio::test]
async fn fenced_writes_move_the_phases_and_refuse_wrong_transitions() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let client = pool.get().await.unwrap();
    let held = open_change(&client, &new_change(7), "a", LONG)
        .await
        .unwrap();

    mark_unsent(&client, &held, true).await.unwrap();
    assert!(stored(&client, held.change_id).await.6);
    mark_unsent(&client, &held, false).await.unwrap();
    let accepted = Timestamp::now();
    mark_submitted(&client, &held, accepted).await.unwrap();
    let (phase, _, _, _, accepted_at, ..) = stored(&client, held.change_id).await;
    assert_eq!(phase, "submitted");
    assert!(accepted_at.is_some());

    for refused in [
        mark_submitted(&client, &held, accepted).await,
        mark_unsent(&client, &held, true).await,
        finish(
            &client,
            &held,
            &ChangeFinish {
                phase: Phase::Submitted,
                ..completed()
            },
        )
        .await,
    ] {
        assert!(
            matches!(refused, Err(LeaseError::Refused(_))),
            "{refused:?}"
        );
    }
    finish(&client, &held, &completed()).await.unwrap();
    let again = finish(&client, &held, &completed()).await;
    assert!(
        matches!(&again, Err(LeaseError::Refused(text)) if text.contains("completed")),
        "{again:?}"
    );
    assert_eq!(stored(&client, held.change_id).await.0, "completed");
}

/// Every grant (an open, a takeover) has a larger fencing number than every earlier one,
/// across instances and owners, and the database holds each change's latest.
#[tokio::test]
async fn fencing_numbers_only_grow() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let client = pool.get().await.unwrap();
    let mut grants = Vec::new();
    for instance in [7, 8] {
        grants.push(
            open_change(&client, &new_change(instance), "a", SHORT)
                .await
                .unwrap(),
        );
    }
    for taker in ["b", "c"] {
        tokio::time::sleep(PAST_SHORT).await;
        let claimed = claim_expired(&client, taker, SHORT, 10).await.unwrap();
        assert_eq!(claimed.len(), 2, "{taker} takes both");
        for change in &claimed {
            assert!(change.held.fence > change.previous_fence);
        }
        // One statement grants both: in which order is the database's.
        let mut batch: Vec<Held> = claimed.into_iter().map(|change| change.held).collect();
        batch.sort_by_key(|held| held.fence);
        grants.extend(batch);
    }
    grants.push(
        open_change(&client, &new_change(9), "a", LONG)
            .await
            .unwrap(),
    );

    let fences: Vec<i64> = grants.iter().map(|held| held.fence).collect();
    assert!(
        fences.windows(2).all(|pair| pair[0] < pair[1]),
        "{fences:?}"
    );
    let latest: Vec<(i64, i64)> = {
        let mut latest = std::collections::BTreeMap::new();
        for held in &grants {
            latest.insert(held.change_id, held.fence);
        }
        latest.into_iter().collect()
    };
    let stored: Vec<(i64, i64)> = client
        .query("SELECT id, fence FROM changes ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(stored, latest);
}

#[test]
fn a_deadline_covers_only_what_is_left_of_the_lease() {
    let sent = Instant::now();
    let deadline = Deadline::new(sent, Duration::from_secs(30));
    assert_eq!(deadline.remaining(sent), Duration::from_secs(30));
    assert!(deadline.covers(sent + Duration::from_secs(10), Duration::from_secs(20)));
    assert!(!deadline.covers(sent + Duration::from_secs(11), Duration::from_secs(20)));
    assert_eq!(
        deadline.remaining(sent + Duration::from_secs(31)),
        Duration::ZERO
    );
}
