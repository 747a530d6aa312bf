//! Takeover against the real PostgreSQL: concurrent claimers split the work, each row
//! goes to exactly one, and what may have been sent says so.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;

use super::claim::{ClaimedChange, claim_expired, claim_undecided_alarms};
use super::lease::{Fence, mark_submitted, mark_unsent, open_change};
use super::testdb::{TestDb, new_change};
use crate::store::ChangeId;

const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_millis(200);
const PAST_SHORT: Duration = Duration::from_millis(400);
/// Long enough for a few writes under the first lease even on a loaded machine.
const MARKED: Duration = Duration::from_secs(1);
const PAST_MARKED: Duration = Duration::from_millis(1300);

/// Claims for `owner`, a few at a time, until nothing is left.
async fn drain(client: &deadpool_postgres::Client, owner: &str) -> Vec<ClaimedChange> {
    let mut all = Vec::new();
    loop {
        let batch = claim_expired(client, owner, LONG, 3).await.unwrap();
        if batch.is_empty() {
            return all;
        }
        all.extend(batch);
    }
}

/// `id → (owner, fence)` of every change.
async fn owners(client: &tokio_postgres::Client) -> BTreeMap<ChangeId, (String, Fence)> {
    client
        .query("SELECT id, owner, fence FROM changes", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), (row.get(1), row.get(2))))
        .collect()
}

#[tokio::test]
async fn two_concurrent_claimers_take_each_expired_change_exactly_once() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let a = pool.get().await.unwrap();
    let mut opened = BTreeMap::new();
    for instance in 1..=10 {
        let held = open_change(&a, &new_change(instance), "a", SHORT)
            .await
            .unwrap();
        opened.insert(held.change_id, held.fence);
    }
    let alive = open_change(&a, &new_change(11), "a", LONG).await.unwrap();
    tokio::time::sleep(PAST_SHORT).await;

    let (b, c) = (pool.get().await.unwrap(), pool.get().await.unwrap());
    let (by_b, by_c) = tokio::join!(drain(&b, "b"), drain(&c, "c"));

    let ids_b: BTreeSet<ChangeId> = by_b.iter().map(|claimed| claimed.change.id).collect();
    let ids_c: BTreeSet<ChangeId> = by_c.iter().map(|claimed| claimed.change.id).collect();
    assert_eq!(ids_b.len(), by_b.len(), "b got one twice: {ids_b:?}");
    assert_eq!(ids_c.len(), by_c.len(), "c got one twice: {ids_c:?}");
    assert!(
        ids_b.is_disjoint(&ids_c),
        "both got {:?}",
        ids_b.intersection(&ids_c)
    );
    let all: BTreeSet<ChangeId> = ids_b.union(&ids_c).copied().collect();
    assert_eq!(
        all,
        opened.keys().copied().collect::<BTreeSet<_>>(),
        "every expired one, not the live one"
    );

    let stored = owners(&a).await;
    for claimed in by_b.iter().chain(&by_c) {
        let before = opened[&claimed.change.id];
        assert!(claimed.held.fence > before, "a larger fence than before");
        assert_eq!(
            (claimed.previous_owner.as_str(), claimed.previous_fence),
            ("a", before)
        );
        assert_eq!(
            stored[&claimed.change.id],
            (claimed.held.owner.clone(), claimed.held.fence),
            "the database holds the claim"
        );
    }
    assert_eq!(stored[&alive.change_id], ("a".to_owned(), alive.fence));
}

/// While one claimer's transaction holds rows, another skips them rather than waiting,
/// and a claim rolled back leaves them to be claimed again.
#[tokio::test]
async fn a_claimer_skips_the_rows_another_is_claiming() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let a = pool.get().await.unwrap();
    for instance in 1..=3 {
        open_change(&a, &new_change(instance), "a", SHORT)
            .await
            .unwrap();
    }
    tokio::time::sleep(PAST_SHORT).await;
    let mut b = pool.get().await.unwrap();
    let c = pool.get().await.unwrap();

    let tx = b.transaction().await.unwrap();
    let by_b = claim_expired(&tx, "b", LONG, 10).await.unwrap();
    assert_eq!(by_b.len(), 3);
    let by_c = tokio::time::timeout(Duration::from_secs(5), claim_expired(&c, "c", LONG, 10))
        .await
        .expect("the second claimer skips locked rows, it does not wait")
        .unwrap();
    assert!(by_c.is_empty(), "{by_c:?}");
    tx.rollback().await.unwrap();

    let by_c = claim_expired(&c, "c", LONG, 10).await.unwrap();
    assert_eq!(by_c.len(), 3, "a rolled-back claim took nothing");
    assert!(owners(&a).await.values().all(|(owner, _)| owner == "c"));
}

#[tokio::test]
async fn a_claimed_change_says_whether_it_may_have_been_sent() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let a = pool.get().await.unwrap();
    let submitted = open_change(&a, &new_change(1), "a", MARKED).await.unwrap();
    mark_submitted(&a, &submitted, Timestamp::now())
        .await
        .unwrap();
    let intended = open_change(&a, &new_change(2), "a", MARKED).await.unwrap();
    let unsent = open_change(&a, &new_change(3), "a", MARKED).await.unwrap();
    mark_unsent(&a, &unsent, true).await.unwrap();
    let dry_run = open_change(
        &a,
        &crate::store::NewChange {
            dry_run: true,
            ..new_change(4)
        },
        "a",
        MARKED,
    )
    .await
    .unwrap();
    tokio::time::sleep(PAST_MARKED).await;

    let claimed = claim_expired(&a, "b", LONG, 10).await.unwrap();

    let sent: BTreeMap<ChangeId, bool> = claimed
        .iter()
        .map(|claimed| (claimed.change.id, claimed.may_have_been_sent()))
        .collect();
    assert_eq!(
        sent,
        BTreeMap::from([
            (submitted.change_id, true),
            (intended.change_id, true),
            (unsent.change_id, false),
            (dry_run.change_id, false),
        ])
    );
    let row = claimed
        .iter()
        .find(|c| c.change.id == unsent.change_id)
        .unwrap();
    assert!(row.change.unsent);
    assert_eq!(row.change.instance_id, 3);
    assert_eq!(row.change.to_plan, "hare-1");
}

/// Inserts an alarm as the accepting replica will; `claim` is `(owner, seconds from now
/// the claim ends)`.
async fn alarm(
    client: &tokio_postgres::Client,
    received_seconds_ago: f64,
    claim: Option<(&str, f64)>,
    decided: bool,
) -> (i64, Option<Fence>) {
    let (owner, until) = claim.map_or((None, None), |(owner, secs)| (Some(owner), Some(secs)));
    let row = client
        .query_one(
            "INSERT INTO alarms (received_at, kind, resolved, body, owner, claimed_until, \
                                 fence, decided_at, decision, detail) \
             VALUES (now() - make_interval(secs => $1::double precision), 'memory', false, \
                     '{\"alarm_type\": \"memory\"}', $2::text, \
                     now() + make_interval(secs => $3::double precision), \
                     CASE WHEN $2::text IS NULL THEN NULL ELSE nextval('fences') END, \
                     CASE WHEN $4 THEN now() END, CASE WHEN $4 THEN 'skip' END, \
                     CASE WHEN $4 THEN 'decided' END) \
             RETURNING id, fence",
            &[&received_seconds_ago, &owner, &until, &decided],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn undecided_alarms_are_claimed_once_and_only_when_due() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let a = pool.get().await.unwrap();
    let (unclaimed, _) = alarm(&a, 10.0, None, false).await;
    let (held, _) = alarm(&a, 10.0, Some(("a", 60.0)), false).await;
    let (expired, expired_fence) = alarm(&a, 10.0, Some(("a", -1.0)), false).await;
    let (decided, _) = alarm(&a, 10.0, None, true).await;
    let (recent, _) = alarm(&a, 0.0, None, false).await;
    let older_than = Duration::from_secs(5);

    let (b, c) = (pool.get().await.unwrap(), pool.get().await.unwrap());
    let (by_b, by_c) = tokio::join!(
        claim_undecided_alarms(&b, "b", LONG, 100, older_than),
        claim_undecided_alarms(&c, "c", LONG, 100, older_than)
    );
    let (by_b, by_c) = (by_b.unwrap(), by_c.unwrap());

    let mut ids: Vec<i64> = by_b.iter().chain(&by_c).map(|alarm| alarm.id).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        [unclaimed, expired],
        "not {held}, {decided} or {recent}"
    );
    for claimed in by_b.iter().chain(&by_c) {
        assert!(claimed.body.contains("memory"));
        assert!(claimed.claimed_until > Timestamp::now());
        if claimed.id == expired {
            assert_eq!(claimed.previous_owner.as_deref(), Some("a"));
            assert!(claimed.fence > expired_fence.unwrap());
        } else {
            assert_eq!(claimed.previous_owner, None);
        }
    }
    let stored: BTreeMap<i64, (Option<String>, Option<Fence>)> = a
        .query("SELECT id, owner, fence FROM alarms", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), (row.get(1), row.get(2))))
        .collect();
    for (owner, claims) in [("b", &by_b), ("c", &by_c)] {
        for claimed in claims {
            assert_eq!(
                stored[&claimed.id],
                (Some(owner.to_owned()), Some(claimed.fence))
            );
        }
    }
    assert_eq!(stored[&held].0.as_deref(), Some("a"));

    // Claimed now, so nobody else gets them while the claims last.
    let again = claim_undecided_alarms(&a, "d", LONG, 100, older_than)
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
}
