//! An accepted change unfolds over the injected clock: lag (old plan, ready), reconfiguring
//! (`ready: false`, an unconfigured node, node count moving), done (new plan, node count
//! from the suffix, all configured, ready), or never done when stuck.

use std::time::Duration;

use cloudamqp_autoscaler::clock::Clock as _;
use cloudamqp_autoscaler::fake::{FakePlan, RABBITMQ, SeedInstance, Timeline, production_plans};
use serde_json::json;

use super::support::{ID, TIMELINE, spawn, spawn_on_manual_clock};

const PLEASE_WAIT: &str =
    "Please wait for your cluster to be configured before trying to update it";

#[tokio::test]
async fn lag_then_reconfiguring_then_done() {
    let (h, clock) = spawn_on_manual_clock(TIMELINE).await;
    assert_eq!(h.put_plan(ID, "hare-3").await.0, 200);

    // Lag: nothing shows yet, a poller trusting this would stop too early.
    assert_eq!(h.shown(ID).await, ("bunny-1".to_owned(), true, Some(1)));
    assert_eq!(h.configured(ID).await, [true]);
    clock.advance(Duration::from_secs(29));
    assert_eq!(h.shown(ID).await, ("bunny-1".to_owned(), true, Some(1)));

    // Reconfiguring: the new plan already shows, but not ready, and a node is unconfigured.
    clock.advance(Duration::from_secs(1));
    let (plan, ready, _) = h.shown(ID).await;
    assert_eq!((plan.as_str(), ready), ("hare-3", false));
    let early = h.configured(ID).await;
    assert!(early.contains(&false), "{early:?}");
    clock.advance(Duration::from_secs(120));
    let (_, ready, nodes) = h.shown(ID).await;
    assert!(!ready);
    let later = h.configured(ID).await;
    assert!(later.contains(&false), "{later:?}");
    assert_eq!(nodes, Some(later.len() as u64));
    assert!(
        later.len() > early.len(),
        "node count moves toward 3: {early:?} → {later:?}"
    );
    assert!(later.len() <= 3);

    // Done: all four conditions hold.
    clock.advance(Duration::from_secs(60));
    assert_eq!(h.shown(ID).await, ("hare-3".to_owned(), true, Some(3)));
    assert_eq!(h.configured(ID).await, [true, true, true]);
    let snapshot = h.fake.instance(ID).expect("a snapshot");
    assert_eq!((snapshot.node_count(), snapshot.changing_to), (3, None));
    h.running.stop().await;
}

#[tokio::test]
async fn a_second_put_while_a_change_runs_is_refused() {
    let (h, clock) = spawn_on_manual_clock(TIMELINE).await;
    assert_eq!(h.put_plan(ID, "hare-3").await.0, 200);
    // During the lag (old plan, ready: true) it is refused all the same.
    assert_eq!(
        h.put_plan(ID, "rabbit-3").await,
        (422, json!({"error": PLEASE_WAIT}))
    );
    clock.advance(Duration::from_secs(60));
    assert_eq!(
        h.put_plan(ID, "rabbit-3").await,
        (422, json!({"error": PLEASE_WAIT}))
    );
    clock.advance(Duration::from_secs(600));
    assert_eq!(h.put_plan(ID, "rabbit-3").await.0, 200);
    assert_eq!(
        h.fake.plan_changes(),
        [(ID, "hare-3".to_owned()), (ID, "rabbit-3".to_owned())]
    );
    assert_eq!(h.fake.put_attempts(), 4);
    h.running.stop().await;
}

#[tokio::test]
async fn scaling_down_ends_on_the_suffix_count() {
    let (h, clock) = spawn_on_manual_clock(TIMELINE).await;
    h.fake.set_plan(ID, "rabbit-5");
    assert_eq!(h.put_plan(ID, "bunny-1").await.0, 200);
    clock.advance(Duration::from_secs(30));
    let during = h.configured(ID).await;
    assert!(during.len() <= 5 && during.contains(&false), "{during:?}");
    clock.advance(Duration::from_secs(180));
    assert_eq!(h.shown(ID).await, ("bunny-1".to_owned(), true, Some(1)));
    h.running.stop().await;
}

#[tokio::test]
async fn legacy_unsuffixed_plans_keep_the_node_count() {
    let h = spawn(|c| {
        c.instances = vec![SeedInstance::new(ID, "old", "hare-3")];
        c.plans = production_plans();
        c.plans.push(FakePlan::new("rabbit", 299, RABBITMQ, false));
    })
    .await;
    assert_eq!(h.put_plan(ID, "rabbit").await.0, 200);
    assert_eq!(h.shown(ID).await, ("rabbit".to_owned(), true, Some(3)));
    h.running.stop().await;
}

#[tokio::test]
async fn stuck_never_finishes() {
    let (h, clock) = spawn_on_manual_clock(Timeline::stuck()).await;
    assert_eq!(h.put_plan(ID, "hare-3").await.0, 200);
    for _ in 0..5 {
        clock.advance(Duration::from_secs(3 * 3600));
        let (plan, ready, _) = h.shown(ID).await;
        assert_eq!((plan.as_str(), ready), ("hare-3", false));
        assert!(h.configured(ID).await.contains(&false));
    }
    assert_eq!(h.put_plan(ID, "rabbit-3").await.0, 422);
    h.running.stop().await;
}

#[tokio::test]
async fn instant_is_done_by_the_next_request() {
    let h = spawn(|c| c.timeline = Timeline::instant()).await;
    assert_eq!(h.put_plan(ID, "hare-3").await.0, 200);
    assert_eq!(h.shown(ID).await, ("hare-3".to_owned(), true, Some(3)));
    h.running.stop().await;
}

#[tokio::test]
async fn requests_are_stamped_with_the_injected_clock() {
    let (h, clock) = spawn_on_manual_clock(TIMELINE).await;
    let start = clock.now();
    h.get("/instances").await;
    clock.advance(Duration::from_secs(90));
    h.get("/instances").await;
    let at: Vec<_> = h.fake.requests().iter().map(|r| r.at).collect();
    assert_eq!(at[0], start);
    assert_eq!(at[1].duration_since(at[0]).as_secs(), 90);
    h.running.stop().await;
}
