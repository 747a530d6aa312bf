//! The plan change (`PUT /api/instances/{id}`). A clear "not now" (429, 503, 423, backend
//! timeout) is retried and CloudAMQP accepts the second attempt. A PUT whose fate is unknown
//! (no answer in time, connection dropped) is never sent again: the instance is watched for
//! ten poll intervals and the change followed if it shows, else recorded `failed`. A refusal
//! (401, 400, 422) is final: `failed`, `needs_attention`. Whatever happens, at most one
//! change is accepted for the spike and the cooldown holds.

use cloudamqp_autoscaler::fake::{FaultRule, PathMatch, Timeline};

use super::common::{
    Kind, Stream, WITHIN, app, cells, instance_path, reminder_is_cooled_down, requests, statuses,
    until,
};
use crate::support::{ID, MEMORY_85};

async fn run(kind: Kind) {
    let app = app(Timeline::instant(), "4s").await;
    let stream = Stream::start(&app);
    app.fake.inject(
        FaultRule::once(kind.fault())
            .method("PUT")
            .path(PathMatch::Exact(instance_path())),
    );
    assert_eq!(app.alarm(MEMORY_85).await.status(), 202);
    let instance = app.wait_for_result(WITHIN).await;
    let last = &instance["last_change"];
    let puts = statuses(&requests(&app, "PUT", &instance_path()));
    let accepted = vec![(ID, "hare-1".to_owned())];
    match kind {
        Kind::RateLimitedRetryAfter
        | Kind::RateLimited
        | Kind::Unavailable
        | Kind::Locked
        | Kind::BackendTimeout => {
            assert_eq!(last["result"], "completed", "{instance:#}");
            assert_eq!(
                puts,
                [kind.recorded_status(), 200],
                "a clear no, then a retry"
            );
            assert_eq!(app.fake.plan_changes(), accepted);
        }
        Kind::SlowerThanTheTimeout => {
            // CloudAMQP applied it and answered too late: found by watching, followed.
            assert_eq!(last["result"], "completed", "{instance:#}");
            assert_eq!(puts, [200], "never sent again");
            assert_eq!(app.fake.plan_changes(), accepted);
        }
        Kind::DroppedConnection => {
            // CloudAMQP never got it: nothing shows within the grace, so it failed.
            assert_eq!(last["result"], "failed", "{instance:#}");
            assert_eq!(last["needs_attention"], true);
            assert_eq!(puts, [0], "never sent again");
            assert!(app.fake.plan_changes().is_empty());
            let detail = app.query("SELECT detail FROM changes")[0][0].clone();
            assert!(
                detail.as_str().unwrap().contains("no clear answer"),
                "{detail}"
            );
        }
        Kind::Unauthorized | Kind::BadRequest | Kind::Refused => {
            assert_eq!(last["result"], "failed", "{instance:#}");
            assert_eq!(last["needs_attention"], true);
            assert_eq!(puts, [kind.recorded_status()], "never retried blindly");
            assert!(app.fake.plan_changes().is_empty());
        }
        Kind::MalformedBody => {
            // A 200 is CloudAMQP's yes, whatever its body. The fake did not apply it (its
            // worst case), so the change never shows and times out for a human to look.
            assert_eq!(last["result"], "timed_out", "{instance:#}");
            assert_eq!(last["needs_attention"], true);
            assert_eq!(puts, [200]);
        }
    }
    reminder_is_cooled_down(&app).await;
    assert_eq!(app.fake.put_attempts(), puts.len());
    stream.finish(&app).await;
    app.stop().await;
}

cells!(run;
    bad_request_400: Kind::BadRequest,
    refused_422: Kind::Refused,
);

/// A PUT with no answer, then every read of the instance answers 503: the watch for the
/// change gives up when its grace (ten poll intervals, 1 s here) ends, not after a read
/// retried for `retry_deadline` (20 s here; before 2026-11-27 it ended after 15 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_after_an_unanswered_put_ends_with_its_grace() {
    let app = app(Timeline::instant(), "4s").await;
    app.fake.inject(
        FaultRule::once(Kind::DroppedConnection.fault())
            .method("PUT")
            .path(PathMatch::Exact(instance_path())),
    );
    assert_eq!(app.alarm(MEMORY_85).await.status(), 202);
    until("the PUT", || app.fake.put_attempts() == 1).await;
    let watching = std::time::Instant::now();
    app.fake.inject(
        FaultRule::once(Kind::Unavailable.fault())
            .method("GET")
            .path(PathMatch::Exact(instance_path()))
            .times(10_000),
    );
    let instance = app.wait_for_result(WITHIN).await;
    let waited = watching.elapsed();
    assert_eq!(instance["last_change"]["result"], "failed", "{instance:#}");
    assert!(
        waited < std::time::Duration::from_secs(8),
        "the watch took {waited:?}: a read was retried past the grace"
    );
    let reads = statuses(&requests(&app, "GET", &instance_path()));
    assert!(reads.contains(&503), "{reads:?}");
    assert!(app.fake.plan_changes().is_empty());
    assert_eq!(app.fake.put_attempts(), 1, "never sent again");
    app.stop().await;
}
