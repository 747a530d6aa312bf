//! The sinks end to end against a capture server: the bodies each sink sends, the
//! webhook's signature, and how each answer is classified.

#[path = "notify_support/mod.rs"]
mod support;

use std::time::Duration;

use cloudamqp_autoscaler::decide::Direction;
use cloudamqp_autoscaler::notify::{
    self, Event, EventChange, EventInstance, EventKind, Mode, NotifySettings, Outcome, Sink,
};
use cloudamqp_autoscaler::settings::Settings;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use support::{Capture, Reply};

const SECRET: &str = "hmac-s3cret-5a1";
const ROUTING_KEY: &str = "pd-routing-key-s3cret-0c9";

fn settings(pairs: &[(&str, String)]) -> NotifySettings {
    let env = pairs.iter().map(|(k, v)| (k.to_string(), v.clone()));
    Settings::load_from(None, env).unwrap().notify
}

/// The one sink `var` (a URL variable) turns on, pointed at `capture`'s `path`.
fn sink(var: &str, url: String, extra: &[(&str, String)]) -> Sink {
    let mut pairs = vec![(var, url)];
    pairs.extend(extra.iter().cloned());
    let mut sinks = notify::sinks(&settings(&pairs));
    assert_eq!(sinks.len(), 1);
    sinks.remove(0)
}

fn webhook(capture: &Capture) -> Sink {
    sink(
        "AUTOSCALER__NOTIFY__WEBHOOK__URL",
        capture.url("/hook/s3cret-path"),
        &[("AUTOSCALER__NOTIFY__WEBHOOK__SECRET", SECRET.into())],
    )
}

fn pagerduty(capture: &Capture) -> Sink {
    sink(
        "AUTOSCALER__NOTIFY__PAGERDUTY__ROUTING_KEY",
        ROUTING_KEY.into(),
        &[(
            "AUTOSCALER__NOTIFY__PAGERDUTY__URL",
            capture.url("/v2/enqueue"),
        )],
    )
}

fn event(kind: EventKind, result: &str) -> Event {
    Event {
        id: "6f1c9a0e-2b7d-4e55-8f0a-1d2c3b4a5e6f".into(),
        kind,
        time: "2026-11-26T17:00:00Z".parse().unwrap(),
        mode: Mode::Live,
        instance: Some(EventInstance {
            id: 4242,
            name: Some("prod-1".into()),
        }),
        change: Some(EventChange {
            kind: cloudamqp_autoscaler::decide::ChangeKind::Plan,
            from: "bunny-1".into(),
            to: "hare-1".into(),
            direction: Direction::Up,
            rule: "memory-high".into(),
            result: result.into(),
        }),
        reason: None,
        detail: "The plan change from bunny-1 to hare-1 did not finish.".into(),
        summary: "prod-1: bunny-1 -> hare-1 <failed> & needs a human".into(),
    }
}

async fn deliver(sink: &Sink, event: &Event) -> Vec<Outcome> {
    let client = notify::client(Duration::from_secs(5)).unwrap();
    let mut outcomes = Vec::new();
    for prepared in sink.requests(event) {
        outcomes.push(notify::send(&client, &prepared).await);
    }
    outcomes
}

#[tokio::test]
async fn the_webhook_posts_the_generic_body_signed() {
    let capture = Capture::start(vec![Reply::status(204)]).await;
    let sink = webhook(&capture);
    assert_eq!(sink.name(), "webhook");
    let event = event(EventKind::ChangeFailed, "failed");
    assert_eq!(deliver(&sink, &event).await, [Outcome::Sent]);

    let requests = capture.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/hook/s3cret-path");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert!(
        request
            .header("user-agent")
            .is_some_and(|ua| ua.starts_with("cloudamqp-autoscaler/"))
    );
    assert_eq!(
        request.json(),
        json!({
            "id": "6f1c9a0e-2b7d-4e55-8f0a-1d2c3b4a5e6f",
            "type": "change.failed",
            "time": "2026-11-26T17:00:00Z",
            "mode": "live",
            "instance": {"id": 4242, "name": "prod-1"},
            "change": {"from": "bunny-1", "to": "hare-1", "direction": "up",
                       "rule": "memory-high", "result": "failed"},
            "reason": null,
            "detail": "The plan change from bunny-1 to hare-1 did not finish.",
            "summary": "prod-1: bunny-1 -> hare-1 <failed> & needs a human",
        })
    );
    // The signature is over the exact bytes received.
    let signature = request.header("x-autoscaler-signature").unwrap();
    let hex = signature.strip_prefix("sha256=").unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(&request.body);
    mac.verify_slice(&hex::decode(hex).unwrap())
        .expect("the signature verifies");
}

#[tokio::test]
async fn an_unsigned_webhook_sends_no_signature() {
    let capture = Capture::start(vec![]).await;
    let sink = sink(
        "AUTOSCALER__NOTIFY__WEBHOOK__URL",
        capture.url("/hook"),
        &[],
    );
    deliver(&sink, &event(EventKind::ChangeStarted, "started")).await;
    assert!(
        capture.requests()[0]
            .header("x-autoscaler-signature")
            .is_none()
    );
}

#[tokio::test]
async fn slack_gets_the_summary_as_text() {
    let capture = Capture::start(vec![]).await;
    let sink = sink(
        "AUTOSCALER__NOTIFY__SLACK__URL",
        capture.url("/services/T/B/x"),
        &[],
    );
    assert_eq!(sink.name(), "slack");
    let outcomes = deliver(&sink, &event(EventKind::ChangeFailed, "failed")).await;
    assert_eq!(outcomes, [Outcome::Sent]);
    let request = &capture.requests()[0];
    assert_eq!(request.header("content-type"), Some("application/json"));
    // Slack's markup characters escaped, so the summary shows as written.
    assert_eq!(
        request.json(),
        json!({"text": "prod-1: bunny-1 -&gt; hare-1 &lt;failed&gt; &amp; needs a human"})
    );
}

#[tokio::test]
async fn pagerduty_triggers_failures_and_the_ladder_top_and_resolves_on_completion() {
    let capture = Capture::start(vec![]).await;
    let sink = pagerduty(&capture);
    assert_eq!(sink.name(), "pagerduty");
    let failed = event(EventKind::ChangeFailed, "timed_out");
    let mut top = event(EventKind::LadderTop, "started");
    top.change = None;
    top.reason = Some("top_of_ladder".into());
    for e in [
        &failed,
        &top,
        &event(EventKind::ChangeCompleted, "completed"),
    ] {
        assert!(deliver(&sink, e).await.iter().all(|o| *o == Outcome::Sent));
    }
    for kind in [
        EventKind::ChangeStarted,
        EventKind::ChangeBlocked,
        EventKind::RulesReloadFailed,
    ] {
        assert!(sink.requests(&event(kind, "started")).is_empty(), "{kind}");
    }

    let bodies: Vec<Value> = capture.requests().iter().map(|r| r.json()).collect();
    assert_eq!(bodies.len(), 4);
    assert!(capture.requests().iter().all(|r| r.path == "/v2/enqueue"));
    assert_eq!(
        bodies[0],
        json!({
            "routing_key": ROUTING_KEY,
            "event_action": "trigger",
            "dedup_key": "cloudamqp-autoscaler/4242/change.failed",
            "client": "cloudamqp-autoscaler",
            "payload": {
                "summary": failed.summary,
                "source": "prod-1",
                "severity": "error",
                "timestamp": "2026-11-26T17:00:00Z",
                "component": "cloudamqp",
                "class": "change.failed",
                "custom_details": serde_json::to_value(&failed).unwrap(),
            },
        })
    );
    assert_eq!(bodies[1]["event_action"], "trigger");
    assert_eq!(
        bodies[1]["dedup_key"],
        "cloudamqp-autoscaler/4242/ladder.top"
    );
    assert_eq!(bodies[1]["payload"]["severity"], "warning");
    assert_eq!(
        bodies[2..],
        [
            json!({"routing_key": ROUTING_KEY, "event_action": "resolve",
                   "dedup_key": "cloudamqp-autoscaler/4242/change.failed"}),
            json!({"routing_key": ROUTING_KEY, "event_action": "resolve",
                   "dedup_key": "cloudamqp-autoscaler/4242/ladder.top"}),
        ]
    );
}

#[tokio::test]
async fn the_test_event_goes_everywhere_and_pagerduty_resolves_it_at_once() {
    let capture = Capture::start(vec![]).await;
    let sink = sink(
        "AUTOSCALER__NOTIFY__PAGERDUTY__ROUTING_KEY",
        ROUTING_KEY.into(),
        &[
            (
                "AUTOSCALER__NOTIFY__PAGERDUTY__URL",
                capture.url("/v2/enqueue"),
            ),
            (
                "AUTOSCALER__NOTIFY__PAGERDUTY__EVENTS",
                "change.failed".into(),
            ),
        ],
    );
    assert!(sink.wants(EventKind::ChangeFailed) && sink.wants(EventKind::Test));
    assert!(!sink.wants(EventKind::LadderTop));
    let test = Event::test("2026-11-26T17:00:00Z".parse().unwrap(), Mode::DryRun);
    assert_eq!(deliver(&sink, &test).await, [Outcome::Sent, Outcome::Sent]);
    let bodies: Vec<Value> = capture.requests().iter().map(|r| r.json()).collect();
    assert_eq!(bodies[0]["event_action"], "trigger");
    assert_eq!(bodies[0]["payload"]["severity"], "info");
    assert_eq!(bodies[0]["payload"]["custom_details"]["mode"], "dry-run");
    assert_eq!(bodies[1]["event_action"], "resolve");
    assert_eq!(bodies[0]["dedup_key"], "cloudamqp-autoscaler/test");
    assert_eq!(bodies[1]["dedup_key"], "cloudamqp-autoscaler/test");
}

#[tokio::test]
async fn answers_are_classified_retry_or_refused() {
    let capture = Capture::start(vec![
        Reply::status(503),
        Reply::status(429).header("retry-after", "7"),
        Reply::status(408),
        Reply::status(400).body("invalid_payload"),
        Reply::status(404),
        Reply::status(500).header("retry-after", "Thu, 01 Jan 2037 00:00:00 GMT"),
    ])
    .await;
    let sink = sink(
        "AUTOSCALER__NOTIFY__SLACK__URL",
        capture.url("/services/T/B/s3cret"),
        &[],
    );
    let e = event(EventKind::ChangeStarted, "started");
    let mut outcomes = Vec::new();
    for _ in 0..6 {
        outcomes.extend(deliver(&sink, &e).await);
    }
    assert!(matches!(&outcomes[0], Outcome::Retry { after: None, why } if why.starts_with("503")));
    assert!(
        matches!(&outcomes[1], Outcome::Retry { after: Some(after), .. } if *after == Duration::from_secs(7)),
        "{:?}",
        outcomes[1]
    );
    assert!(matches!(&outcomes[2], Outcome::Retry { .. }));
    assert_eq!(
        outcomes[3],
        Outcome::Refused {
            why: "400 Bad Request: invalid_payload".into()
        }
    );
    assert!(matches!(&outcomes[4], Outcome::Refused { why } if why.starts_with("404")));
    // An HTTP date is a wait until then.
    assert!(
        matches!(&outcomes[5], Outcome::Retry { after: Some(after), .. } if *after > Duration::from_secs(3600)),
        "{:?}",
        outcomes[5]
    );
    for outcome in &outcomes {
        assert!(!format!("{outcome:?}").contains("s3cret"), "{outcome:?}");
    }
}

#[tokio::test]
async fn a_refused_connection_is_retried_and_the_url_not_told() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let sink = sink(
        "AUTOSCALER__NOTIFY__WEBHOOK__URL",
        format!("http://127.0.0.1:{port}/hook/s3cret-path"),
        &[],
    );
    let outcomes = deliver(&sink, &event(EventKind::ChangeStarted, "started")).await;
    match &outcomes[..] {
        [Outcome::Retry { after: None, why }] => {
            assert!(why.starts_with("cannot connect"), "{why}");
            assert!(
                !why.contains("s3cret") && !why.contains("127.0.0.1"),
                "{why}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_echoed_routing_key_is_not_repeated() {
    let capture = Capture::start(vec![
        Reply::status(400).body(&format!("{{\"message\":\"bad key {ROUTING_KEY}\"}}")),
    ])
    .await;
    let outcomes = deliver(
        &pagerduty(&capture),
        &event(EventKind::ChangeFailed, "failed"),
    )
    .await;
    match &outcomes[..] {
        [Outcome::Refused { why }] => {
            assert!(
                why.starts_with("400") && !why.contains(ROUTING_KEY),
                "{why}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_redirect_to_another_host_is_not_followed() {
    let elsewhere = Capture::start(vec![]).await;
    let capture = Capture::start(vec![
        Reply::status(307).header("location", &elsewhere.url("/stolen")),
    ])
    .await;
    let outcomes = deliver(
        &webhook(&capture),
        &event(EventKind::ChangeFailed, "failed"),
    )
    .await;
    assert!(matches!(&outcomes[..], [Outcome::Refused { why }] if why.starts_with("307")));
    assert!(elsewhere.requests().is_empty());
}

#[test]
fn prepared_requests_and_sinks_show_no_secret() {
    let notify = settings(&[
        (
            "AUTOSCALER__NOTIFY__WEBHOOK__URL",
            "https://h.example/s3cret-a".into(),
        ),
        ("AUTOSCALER__NOTIFY__WEBHOOK__SECRET", "s3cret-b".into()),
        (
            "AUTOSCALER__NOTIFY__SLACK__URL",
            "https://hooks.slack.com/s3cret-c".into(),
        ),
        (
            "AUTOSCALER__NOTIFY__PAGERDUTY__ROUTING_KEY",
            "s3cret-d".into(),
        ),
    ]);
    let sinks = notify::sinks(&notify);
    assert_eq!(
        sinks.iter().map(Sink::name).collect::<Vec<_>>(),
        ["webhook", "slack", "pagerduty"]
    );
    let e = event(EventKind::ChangeFailed, "failed");
    let prepared: Vec<_> = sinks.iter().flat_map(|s| s.requests(&e)).collect();
    let shown = format!("{notify:?} {sinks:?} {prepared:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
}
