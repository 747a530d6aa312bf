//! CloudAMQP unreachable when the daemon starts (its API URL names a closed port): the
//! daemon starts anyway, is ready, accepts alarms (202) and records them as `plan_unknown`
//! skips once the retry deadline passes; when the API comes up it acts normally, with no
//! restart.

use std::net::TcpListener;

use cloudamqp_autoscaler::fake::{FakeCloudAmqp, FakeConfig, Timeline};
use reqwest::StatusCode;

use super::common::{OTHER, Stream, WITHIN, decision_of, spawn};
use crate::support::{ID, KEY, MEMORY_85, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudamqp_unreachable_at_start_up_then_back_without_a_restart() {
    // A port that was free a moment ago and that nothing listens on now.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let spawn =
        spawn(Timeline::instant(), "30s").env("AUTOSCALER__CLOUDAMQP__RETRY_DEADLINE", "2s");
    let fake = FakeCloudAmqp::new(FakeConfig {
        api_key: KEY.into(),
        timeline: Timeline::instant(),
        instances: spawn.instances.clone(),
        ..FakeConfig::default()
    });
    let url = format!("http://127.0.0.1:{port}/api");
    let app = spawn_app(crate::support::Spawn {
        fake: Some((fake.clone(), url)),
        ..spawn
    })
    .await;
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    let stream = Stream::start(&app);

    assert_eq!(
        decision_of(&app, app.alarm(MEMORY_85).await).await,
        "plan_unknown"
    );
    let instance = app.instance().await;
    assert_eq!(instance["last_decision"]["reason"], "plan_unknown");
    assert!(instance["change"].is_null());
    let detail = app.query("SELECT detail FROM decisions WHERE reason = 'plan_unknown'");
    assert!(
        detail[0][0].as_str().unwrap().contains("cannot connect"),
        "{detail:?}"
    );
    assert!(fake.requests().is_empty());

    // CloudAMQP comes back on the same address.
    let running = fake
        .start(TcpListener::bind(("127.0.0.1", port)).unwrap())
        .await
        .unwrap();
    assert_eq!(app.alarm(MEMORY_85).await.status(), 202);
    let instance = app.wait_for_result(WITHIN).await;
    assert_eq!(
        instance["last_change"]["result"], "completed",
        "{instance:#}"
    );
    assert_eq!(fake.plan_changes(), vec![(ID, "hare-1".to_owned())]);
    stream.finish(&app).await;
    assert_eq!(
        app.query(&format!("SELECT count(*) FROM decisions WHERE instance_id = {OTHER} AND reason = 'below_threshold'"))[0][0],
        app.query(&format!("SELECT count(*) FROM alarms WHERE instance = '{OTHER}'"))[0][0],
    );
    app.stop().await;
    running.stop().await;
}
