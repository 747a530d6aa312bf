//! Following an accepted change (`GET /api/instances/{id}` and `GET …/nodes`, every poll
//! interval). Each fault hits one poll of the instance and the first read of the nodes:
//! transient ones are retried inside the call, the rest count as a failed poll, and up to
//! five failed polls in a row are tolerated. The change completes, with one PUT.

use std::time::Duration;

use cloudamqp_autoscaler::fake::{Fault, FaultRule, PathMatch, Timeline};

use super::common::{
    Kind, Stream, WITHIN, app, cells, instance_path, on_get, one_change_and_the_stream_held,
    reminder_is_cooled_down, until,
};
use crate::support::{ID, MEMORY_85, TestApp};

/// Long enough to be polled a dozen times: 0.5 s of lag, 1 s of reconfiguring.
fn timeline() -> Timeline {
    Timeline {
        lag: Duration::from_millis(500),
        reconfigure: Duration::from_secs(1),
        stuck: false,
    }
}

fn nodes_path() -> String {
    format!("/api/instances/{ID}/nodes")
}

/// Sends the alarm and waits for CloudAMQP to have the PUT: from then on, every read of
/// the instance is a poll.
async fn change_started(app: &TestApp) {
    assert_eq!(app.alarm(MEMORY_85).await.status(), 202);
    until("the PUT", || app.fake.put_attempts() == 1).await;
}

async fn run(kind: Kind) {
    let app = app(timeline(), "30s").await;
    let stream = Stream::start(&app);
    // The nodes are read only once the instance looks done: a fault queued now hits that.
    app.fake.inject(on_get(&nodes_path(), kind));
    change_started(&app).await;
    app.fake.inject(on_get(&instance_path(), kind));
    let instance = app.wait_for_result(WITHIN).await;
    assert_eq!(
        instance["last_change"]["result"], "completed",
        "{instance:#}"
    );
    assert_eq!(app.fake.pending_faults(), 0, "both faults were met");
    reminder_is_cooled_down(&app).await;
    one_change_and_the_stream_held(app, stream).await;
}

cells!(run);

async fn failed_polls_in_a_row(times: usize) -> (TestApp, serde_json::Value) {
    let app = app(timeline(), "30s").await;
    change_started(&app).await;
    app.fake.inject(
        FaultRule::once(Fault::Unauthorized)
            .method("GET")
            .path(PathMatch::Exact(instance_path()))
            .times(times),
    );
    let instance = app.wait_for_result(WITHIN).await;
    assert_eq!(app.fake.pending_faults(), 0);
    (app, instance)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_failed_polls_in_a_row_are_tolerated() {
    let (app, instance) = failed_polls_in_a_row(4).await;
    assert_eq!(
        instance["last_change"]["result"], "completed",
        "{instance:#}"
    );
    assert_eq!(app.fake.put_attempts(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_failed_polls_in_a_row_fail_the_change_and_nothing_is_sent_again() {
    let (app, instance) = failed_polls_in_a_row(5).await;
    assert_eq!(instance["last_change"]["result"], "failed", "{instance:#}");
    assert_eq!(instance["last_change"]["needs_attention"], true);
    let detail = app.query("SELECT detail FROM changes")[0][0].clone();
    assert!(
        detail.as_str().unwrap().contains("5 polls in a row failed"),
        "{detail}"
    );
    reminder_is_cooled_down(&app).await;
    assert_eq!(app.fake.put_attempts(), 1);
    app.stop().await;
}
