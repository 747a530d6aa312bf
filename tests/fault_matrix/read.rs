//! The read of the instance before deciding (`GET /api/instances/{id}`): a transient fault
//! is retried and the change goes ahead; anything else is a `plan_unknown` skip, read once,
//! nothing sent, and the next reminder acts.

use cloudamqp_autoscaler::fake::Timeline;

use super::common::{Kind, Stream, WITHIN, app, cells, instance_path, on_get, requests, statuses};
use crate::support::{ID, MEMORY_85};

async fn run(kind: Kind) {
    let app = app(Timeline::instant(), "30s").await;
    let stream = Stream::start(&app);
    app.fake.inject(on_get(&instance_path(), kind));
    assert_eq!(app.alarm(MEMORY_85).await.status(), 202);
    if kind.retried() {
        let instance = app.wait_for_result(WITHIN).await;
        assert_eq!(
            instance["last_change"]["result"], "completed",
            "{instance:#}"
        );
        let reads = statuses(&requests(&app, "GET", &instance_path()));
        assert_eq!(
            reads[..2],
            [kind.recorded_status(), 200],
            "the faulty read, then its retry: {reads:?}"
        );
    } else {
        let instance = app
            .wait_for("the skip", WITHIN, |i| !i["last_decision"].is_null())
            .await;
        assert_eq!(
            instance["last_decision"]["reason"], "plan_unknown",
            "{instance:#}"
        );
        assert_eq!(
            statuses(&requests(&app, "GET", &instance_path())),
            [kind.recorded_status()],
            "never retried blindly"
        );
        assert_eq!(app.fake.put_attempts(), 0);
        assert!(
            requests(&app, "GET", "/api/plans").is_empty(),
            "the decision stopped at the read"
        );
        // The next reminder tries again, and CloudAMQP is fine by now.
        assert_eq!(app.alarm(MEMORY_85).await.status(), 202);
        let instance = app.wait_for_result(WITHIN).await;
        assert_eq!(
            instance["last_change"]["result"], "completed",
            "{instance:#}"
        );
    }
    assert_eq!(app.fake.put_attempts(), 1);
    assert_eq!(app.fake.plan_changes(), vec![(ID, "hare-1".to_owned())]);
    stream.finish(&app).await;
    app.stop().await;
}

cells!(run {
    rate_limited_with_retry_after: Kind::RateLimitedRetryAfter,
    rate_limited_without_retry_after: Kind::RateLimited,
    unavailable_503: Kind::Unavailable,
    locked_423: Kind::Locked,
    backend_timeout_400_40099: Kind::BackendTimeout,
    unauthorized_401: Kind::Unauthorized,
    slower_than_the_client_timeout: Kind::SlowerThanTheTimeout,
    malformed_body: Kind::MalformedBody,
    dropped_connection: Kind::DroppedConnection,
    bad_request_400: Kind::BadRequest,
});
