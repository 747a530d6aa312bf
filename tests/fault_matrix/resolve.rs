//! Mapping an alarm's instance UUID to its id (`GET /api/instances`). A transient fault is
//! retried and the change goes ahead; anything else leaves the UUID unmapped: the alarm is
//! skipped with `instance_unknown` (the list read once, nothing sent), and since a failed
//! list is not remembered as "no such UUID", the next reminder lists again and acts.

use cloudamqp_autoscaler::fake::{SeedInstance, Timeline};

use super::common::{Kind, Stream, WITHIN, app, cells, decision_of, on_get, requests, statuses};
use crate::support::{ID, TestApp};

fn by_uuid() -> String {
    let uuid = SeedInstance::new(ID, "prod", "bunny-1").providerid;
    format!(r#"{{"alarm_type":"memory","value":85,"instance_id":"{uuid}"}}"#)
}

async fn alarm(app: &TestApp) -> reqwest::Response {
    app.alarm(&by_uuid()).await
}

async fn run(kind: Kind) {
    let app = app(Timeline::instant(), "30s").await;
    let stream = Stream::start(&app);
    app.fake.inject(on_get("/api/instances", kind));
    let first = alarm(&app).await;
    if kind.retried() {
        assert_eq!(first.status(), 202);
        let instance = app.wait_for_result(WITHIN).await;
        assert_eq!(
            instance["last_change"]["result"], "completed",
            "{instance:#}"
        );
        assert_eq!(
            statuses(&requests(&app, "GET", "/api/instances")),
            [kind.recorded_status(), 200]
        );
    } else {
        assert_eq!(decision_of(&app, first).await, "instance_unknown");
        assert_eq!(
            statuses(&requests(&app, "GET", "/api/instances")),
            [kind.recorded_status()],
            "never retried blindly"
        );
        assert_eq!(app.fake.put_attempts(), 0);
        assert_eq!(
            app.query("SELECT instance_id, detail LIKE '%could not be mapped%' FROM decisions WHERE reason = 'instance_unknown'"),
            [[serde_json::Value::Null, 1.into()]]
        );
        assert_eq!(alarm(&app).await.status(), 202);
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
});
