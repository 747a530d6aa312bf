//! The plan catalogue (`GET /api/plans`), read once per decision that could change a plan
//! and cached for an hour. A transient fault is retried; anything else leaves the decision
//! without prices and without the local check of allowed moves, and it goes ahead on the
//! rules' ladder order (CloudAMQP itself still refuses a forbidden move). Either way one PUT.

use cloudamqp_autoscaler::fake::Timeline;

use super::common::{
    Kind, Stream, WITHIN, app, cells, on_get, one_change_and_the_stream_held, requests, statuses,
};
use crate::support::MEMORY_85;

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
    one_change_and_the_stream_held(app, stream).await;
}

cells!(run);
