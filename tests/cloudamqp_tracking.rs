//! Following a plan change to its end against the fake's timelines, on the manual clock.

mod cloudamqp_support;

use std::time::Duration;

use cloudamqp_autoscaler::clock::{Clock, add};
use cloudamqp_autoscaler::cloudamqp::{
    ApiError, PlanChange, TrackEvent, TrackOptions, TrackOutcome, track_change,
};
use cloudamqp_autoscaler::fake::{Fault, FaultRule, PathMatch, Timeline};
use cloudamqp_support::{Harness, ID, secs, start_time};

/// Sends the PUT and tracks it, returning the outcome, the events and the change.
async fn change_and_track(h: &Harness, to: &str) -> (TrackOutcome, Vec<TrackEvent>, PlanChange) {
    h.client.change_plan(ID, to).await.unwrap();
    let change = leaving_bunny_1(h, to);
    let (outcome, events) = track(h, &change).await;
    (outcome, events, change)
}

/// A change from bunny-1 to `to`, accepted now.
fn leaving_bunny_1(h: &Harness, to: &str) -> PlanChange {
    PlanChange {
        instance_id: ID,
        from_plan: "bunny-1".into(),
        to_plan: to.into(),
        accepted_at: h.clock.now(),
    }
}

async fn track(h: &Harness, change: &PlanChange) -> (TrackOutcome, Vec<TrackEvent>) {
    let mut events = Vec::new();
    let outcome = track_change(
        &h.client,
        change,
        TrackOptions::from_settings(&h.settings),
        |e| events.push(e.clone()),
    )
    .await;
    (outcome, events)
}

fn after(secs: u64) -> jiff::Timestamp {
    add(start_time(), Duration::from_secs(secs))
}

#[tokio::test]
async fn an_instant_change_completes_at_the_first_poll() {
    let h = Harness::new(Timeline::instant()).await;
    let (outcome, events, _) = change_and_track(&h, "hare-3").await;
    assert_eq!(outcome, TrackOutcome::Completed { at: after(15) });
    assert_eq!(events, vec![TrackEvent::Done]);
    assert_eq!(h.clock.sleeps(), secs(&[15]));
    assert_eq!(h.fake.instance(ID).unwrap().node_count(), 3);
}

#[tokio::test]
async fn a_lagging_change_is_not_done_before_the_new_plan_shows_and_settles() {
    // Realistic: 30 s showing the old plan (ready), then 180 s reconfiguring.
    let h = Harness::new(Timeline::realistic()).await;
    let (outcome, events, _) = change_and_track(&h, "hare-3").await;
    let TrackOutcome::Completed { at } = outcome else {
        panic!("{outcome:?}")
    };
    assert!(at >= after(30 + 180), "finished early at {at}");
    assert_eq!(at, after(210));
    assert_eq!(
        events[0],
        TrackEvent::StillOldPlan {
            plan: "bunny-1".into()
        }
    );
    assert!(
        events.iter().any(|e| matches!(e,
            TrackEvent::Reconfiguring { ready: false, configured, total, .. } if configured < total)),
        "{events:?}"
    );
    assert_eq!(events.last(), Some(&TrackEvent::Done));
    assert!(
        h.clock
            .sleeps()
            .iter()
            .all(|d| *d == Duration::from_secs(15))
    );
}

#[tokio::test]
async fn a_stuck_change_times_out_exactly_at_change_timeout() {
    let h = Harness::new(Timeline::stuck()).await;
    let (outcome, events, change) = change_and_track(&h, "hare-1").await;
    assert_eq!(
        outcome,
        TrackOutcome::TimedOut {
            at: add(change.accepted_at, Duration::from_secs(3600))
        }
    );
    assert_eq!(h.clock.sleeps(), vec![Duration::from_secs(15); 240]);
    assert!(!events.contains(&TrackEvent::Done));
}

#[tokio::test]
async fn failing_polls_retry_only_until_change_timeout() {
    // Every read answers 503 after the PUT. A poll retries (1 s, 2 s … 30 s), but only
    // until the change's deadline, not for a whole retry_deadline (300 s) past it.
    let h = Harness::with(Timeline::stuck(), |s| {
        s.change_timeout = Duration::from_secs(120);
    })
    .await;
    h.client.change_plan(ID, "hare-1").await.unwrap();
    h.fake.inject(
        FaultRule::once(Fault::ServiceUnavailable)
            .method("GET")
            .times(1000),
    );
    let change = leaving_bunny_1(&h, "hare-1");
    let (outcome, events) = track(&h, &change).await;
    assert_eq!(outcome, TrackOutcome::TimedOut { at: after(120) });
    // First poll at 15 s, retried until 106 s (the next 30 s would pass 120 s); the last
    // sleep is cut to the deadline, where one attempt is made and not retried.
    assert_eq!(h.clock.sleeps(), secs(&[15, 1, 2, 4, 8, 16, 30, 30, 14]));
    assert_eq!(h.statuses().iter().filter(|s| **s == 503).count(), 9);
    assert!(matches!(
        events.as_slice(),
        [
            TrackEvent::PollError { consecutive: 1, .. },
            TrackEvent::PollError { consecutive: 2, .. }
        ]
    ));
}

#[tokio::test]
async fn a_401_right_after_the_put_and_a_503_mid_poll_are_tolerated() {
    let h = Harness::new(Timeline::realistic()).await;
    h.fake.unauthorized_once_after_put();
    h.client.change_plan(ID, "hare-1").await.unwrap();
    h.fake.inject(
        FaultRule::once(Fault::ServiceUnavailable)
            .method("GET")
            .path(PathMatch::Exact(format!("/api/instances/{ID}"))),
    );
    let change = leaving_bunny_1(&h, "hare-1");
    let (outcome, events) = track(&h, &change).await;
    assert!(
        matches!(outcome, TrackOutcome::Completed { .. }),
        "{outcome:?}"
    );
    assert_eq!(
        events[0],
        TrackEvent::PollError {
            error: ApiError::Unauthorized,
            consecutive: 1
        }
    );
    let statuses = h.statuses();
    assert!(
        statuses.contains(&401) && statuses.contains(&503),
        "{statuses:?}"
    );
    // The 503 was retried inside the poll, after the client's 1 s backoff.
    assert!(h.clock.sleeps().contains(&Duration::from_secs(1)));
}

#[tokio::test]
async fn a_run_of_failed_polls_fails_the_change() {
    let h = Harness::new(Timeline::realistic()).await;
    h.client.change_plan(ID, "hare-1").await.unwrap();
    h.fake
        .inject(FaultRule::once(Fault::Unauthorized).method("GET").times(5));
    let change = leaving_bunny_1(&h, "hare-1");
    let (outcome, events) = track(&h, &change).await;
    let TrackOutcome::Failed { reason, at } = outcome else {
        panic!("{outcome:?}")
    };
    assert!(reason.contains("5 polls in a row"), "{reason}");
    assert_eq!(at, add(change.accepted_at, Duration::from_secs(75)));
    assert_eq!(events.len(), 5);
}

#[tokio::test]
async fn a_vanished_instance_fails_the_change() {
    let h = Harness::new(Timeline::instant()).await;
    let change = PlanChange {
        instance_id: 42,
        from_plan: "bunny-1".into(),
        to_plan: "hare-1".into(),
        accepted_at: h.clock.now(),
    };
    let (outcome, _) = track(&h, &change).await;
    assert!(
        matches!(&outcome, TrackOutcome::Failed { reason, .. } if reason.contains("Invalid ID")),
        "{outcome:?}"
    );
    assert_eq!(h.statuses(), vec![404]);
}

#[tokio::test]
async fn a_third_plan_set_by_someone_else_fails_the_change() {
    let h = Harness::new(Timeline::realistic()).await;
    h.client.change_plan(ID, "hare-1").await.unwrap();
    assert!(h.fake.set_plan(ID, "rabbit-1"));
    let change = leaving_bunny_1(&h, "hare-1");
    let (outcome, _) = track(&h, &change).await;
    assert!(
        matches!(&outcome, TrackOutcome::Failed { reason, .. } if reason.contains("rabbit-1")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn resuming_keeps_the_original_start() {
    // The daemon restarts 50 min into a stuck change: 10 min are left, not 60.
    let h = Harness::new(Timeline::stuck()).await;
    h.client.change_plan(ID, "hare-1").await.unwrap();
    let accepted_at = h.clock.now();
    h.clock.advance(Duration::from_secs(50 * 60));
    let change = PlanChange {
        instance_id: ID,
        from_plan: "bunny-1".into(),
        to_plan: "hare-1".into(),
        accepted_at,
    };
    let (outcome, _) = track(&h, &change).await;
    assert_eq!(
        outcome,
        TrackOutcome::TimedOut {
            at: add(accepted_at, Duration::from_secs(3600))
        }
    );
    assert_eq!(h.clock.sleeps().len(), 40);
}

#[tokio::test]
async fn resuming_after_the_timeout_still_looks_once() {
    // A change that finished while the daemon was down is completed, not timed out.
    let h = Harness::new(Timeline::instant()).await;
    h.client.change_plan(ID, "hare-1").await.unwrap();
    let accepted_at = h.clock.now();
    h.clock.advance(Duration::from_secs(2 * 3600));
    let change = PlanChange {
        instance_id: ID,
        from_plan: "bunny-1".into(),
        to_plan: "hare-1".into(),
        accepted_at,
    };
    let (outcome, _) = track(&h, &change).await;
    assert_eq!(outcome, TrackOutcome::Completed { at: h.clock.now() });
    assert!(h.clock.sleeps().is_empty());
}
