//! The plan catalogue (`GET /api/plans`), read once per decision that could change a plan
//! and cached for an hour. A transient fault is retried; anything else leaves the decision
//! without prices and without the local check of allowed moves, and it goes ahead on the
//! rules' ladder order (CloudAMQP itself still refuses a forbidden move). Either way one PUT.

use cloudamqp_autoscaler::fake::Timeline;

use super::common::{Kind, Stream, WITHIN, app, cells, on_get, requests, statuses};
use crate::support::{ID, MEMORY_85};

async fn run(kind: Kind) {
    let app = app(Timeline::instant(), "30s").await;
    let stream = Stream::start(&app);
    app.fake.inject(on_get("/api/plans", kind));
    assert_eq!(app.alarm(MEMORY_85).await.status(), 202);
    let instance = app.wait_for_result(WITHIN).await;
    assert_eq!(
        instance["last_change"]["result"], "completed",
        "{instance:#}"
    );
    let plans = statuses(&requests(&app, "GET", "/api/plans"));
    if kind.retried() {
        assert_eq!(plans, [kind.recorded_status(), 200]);
    } else {
        assert_eq!(plans, [kind.recorded_status()], "never retried blindly");
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
});
