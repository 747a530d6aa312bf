//! The read of the instance before deciding (`GET /api/instances/{id}`): a transient fault
//! is retried and the change goes ahead; anything else is a `plan_unknown` skip, read once,
//! nothing sent, and the next reminder acts.

use cloudamqp_autoscaler::fake::Timeline;

use super::common::{
    Kind, Stream, WITHIN, app, cells, instance_path, on_get, one_change_and_the_stream_held,
    requests, statuses,
};
use crate::support::MEMORY_85;

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
    one_change_and_the_stream_held(app, stream).await;
}

cells!(run;
    bad_request_400: Kind::BadRequest,
);
