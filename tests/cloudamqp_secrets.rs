//! Secrets never leak: neither the API key (nor its Basic header form) nor the credentials
//! inside CloudAMQP's instance objects appear in logs, errors, or returned values.
//!
//! Logs are captured at TRACE level for every target (reqwest and hyper included) while the
//! client succeeds and fails in every way the fake offers.

mod cloudamqp_support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use cloudamqp_autoscaler::cloudamqp::{
    CloudAmqpClient, InstanceResolver, PlanChange, TrackOptions, track_change,
};
use cloudamqp_autoscaler::fake::{Fault, FaultRule, PathMatch, SECRET_MARKER, Timeline};
use cloudamqp_autoscaler::instance::InstanceRef;
use cloudamqp_support::{Harness, ID, KEY};

/// A log sink the test can read back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Every form a secret could take in a log or message.
fn forbidden(wrong_key: &str) -> Vec<String> {
    let basic = |key: &str| base64::engine::general_purpose::STANDARD.encode(format!(":{key}"));
    vec![
        KEY.to_owned(),
        basic(KEY),
        wrong_key.to_owned(),
        basic(wrong_key),
        SECRET_MARKER.to_owned(),
    ]
}

fn assert_clean(what: &str, text: &str, wrong_key: &str) {
    for secret in forbidden(wrong_key) {
        assert!(
            !text.contains(&secret),
            "{what} contains the secret {secret:?}:\n{text}"
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn no_secret_reaches_logs_errors_or_returned_values() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let wrong_key = "wrong-key-d41d8cd98f";
    let h = Harness::with(Timeline::realistic(), |s| {
        s.retry_deadline = Duration::from_secs(20);
        s.request_timeout = Duration::from_millis(500);
    })
    .await;
    let mut seen = Vec::<String>::new();

    // Successful reads of objects that carry credentials.
    let instance = h.client.instance(ID).await.unwrap();
    let list = h.client.list_instances().await.unwrap();
    let nodes = h.client.nodes(ID).await.unwrap();
    seen.push(format!("{instance:?} {list:?} {nodes:?} {:?}", h.client));

    // An error body echoing the key and an instance credential back.
    let echo = format!("bad key {KEY} for amqps://user:{SECRET_MARKER}pw@host/vhost");
    let on_instance = |fault| {
        FaultRule::once(fault)
            .method("GET")
            .path(PathMatch::Exact(format!("/api/instances/{ID}")))
    };
    h.fake.inject(on_instance(Fault::Respond {
        status: 400,
        body: serde_json::json!({ "error": echo, "errors": [{ "detail": echo }] }),
    }));
    h.fake.inject(on_instance(Fault::Respond {
        status: 422,
        body: serde_json::json!({ "message": echo }),
    }));
    h.fake.inject(on_instance(Fault::Respond {
        status: 500,
        body: serde_json::json!({ "error": echo }),
    }));
    h.fake.inject(on_instance(Fault::MalformedBody));
    for _ in 0..4 {
        let err = h.client.instance(ID).await.unwrap_err();
        seen.push(format!("{err} {err:?}"));
    }
    // Transient failures until the deadline: every retry is logged.
    h.fake
        .inject(on_instance(Fault::ServiceUnavailable).times(3));
    h.fake.inject(on_instance(Fault::DropConnection));
    h.fake
        .inject(on_instance(Fault::Slow(Duration::from_secs(5))));
    let err = h.client.instance(ID).await.unwrap_err();
    seen.push(format!("{err} {err:?}"));

    // A change tracked through a 401, and a resolver miss.
    h.fake.unauthorized_once_after_put();
    h.client.change_plan(ID, "hare-1").await.unwrap();
    let change = PlanChange {
        instance_id: ID,
        from_plan: "bunny-1".into(),
        to_plan: "hare-1".into(),
        accepted_at: cloudamqp_autoscaler::clock::Clock::now(&*h.clock),
    };
    let outcome = track_change(
        &h.client,
        &change,
        TrackOptions::from_settings(&h.settings),
        |event| seen.push(format!("{event:?}")),
    )
    .await;
    seen.push(format!("{outcome:?}"));
    let resolver = InstanceResolver::new(h.client.clone());
    let err = resolver
        .resolve(InstanceRef::Uuid(uuid::Uuid::nil()))
        .await
        .unwrap_err();
    seen.push(format!("{err} {err:?} {resolver:?}"));

    // A wrong key: refused, and neither key shows.
    let mut wrong = h.settings.clone();
    wrong.api_key = Some(wrong_key.into());
    let other = CloudAmqpClient::new(&wrong, h.clock.clone()).unwrap();
    let err = other.instance(ID).await.unwrap_err();
    seen.push(format!("{err} {err:?} {other:?} {wrong:?}"));

    let logs = logs.text();
    assert!(
        logs.contains("retrying"),
        "the failures above must have been logged:\n{logs}"
    );
    assert!(logs.contains("CloudAMQP accepted the change"), "{logs}");
    assert_clean("the logs", &logs, wrong_key);
    for text in &seen {
        assert_clean("a returned value or error", text, wrong_key);
    }
    // The echoed message itself survives, minus its secrets.
    assert!(
        seen.iter()
            .any(|t| t.contains("bad key *** for amqps://***@host"))
    );
}
