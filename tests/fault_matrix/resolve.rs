//! Mapping an alarm's instance UUID to its id (`GET /api/instances`). A transient fault is
//! retried and the change goes ahead; anything else leaves the UUID unmapped: the alarm is
//! skipped with `instance_unknown` (the list read once, nothing sent), and since a failed
//! list is not remembered as "no such UUID", the next reminder lists again and acts.

use cloudamqp_autoscaler::fake::{SeedInstance, Timeline};

use super::common::{
    Kind, Stream, WITHIN, app, cells, decision_of, on_get, one_change_and_the_stream_held,
    requests, statuses,
};
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
    one_change_and_the_stream_held(app, stream).await;
}

cells!(run);
