//! `PUT /api/instances/{id}`: production's rules, in production's order, and the record of
//! what was accepted.

use cloudamqp_autoscaler::fake::SeedInstance;
use reqwest::Method;
use serde_json::{Value, json};

use super::support::{ID, spawn, status_and_json};

const ACCEPTED: &str =
    "Your cluster is being reconfigured, this can take up to 10 minutes to complete. ";
const PLEASE_WAIT: &str =
    "Please wait for your cluster to be configured before trying to update it";
const TO_SHARED: &str =
    "Sorry, you can't move to a shared plan automatically. Please create a new instance.";

fn error_of(body: &Value) -> &str {
    body["error"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn accepted_change_answers_production_message_and_is_recorded() {
    let h = spawn(|_| {}).await;
    assert_eq!(
        h.put_plan(ID, "hare-3").await,
        (200, json!({"message": ACCEPTED}))
    );
    assert_eq!(h.fake.plan_changes(), [(ID, "hare-3".to_owned())]);
    let puts: Vec<_> = h
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .collect();
    assert_eq!(puts.len(), 1);
    assert_eq!(puts[0].plan(), Some("hare-3"));
    assert_eq!(puts[0].path, format!("/api/instances/{ID}"));
    h.running.stop().await;
}

#[tokio::test]
async fn form_bodies_work_like_json() {
    let h = spawn(|_| {}).await;
    let response = h
        .request(Method::PUT, &format!("/instances/{ID}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("plan=hare-1")
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(h.fake.plan_changes(), [(ID, "hare-1".to_owned())]);
    assert_eq!(h.fake.requests()[0].plan(), Some("hare-1"));
    h.running.stop().await;
}

#[tokio::test]
async fn missing_or_unreadable_bodies_are_400() {
    let h = spawn(|_| {}).await;
    let path = format!("/instances/{ID}");
    let attempts = [
        ("no body", h.request(Method::PUT, &path)),
        (
            "not json",
            h.request(Method::PUT, &path)
                .header("content-type", "application/json")
                .body("{plan"),
        ),
        (
            "no plan",
            h.request(Method::PUT, &path).json(&json!({"size": 3})),
        ),
        (
            "plan not a string",
            h.request(Method::PUT, &path).json(&json!({"plan": 3})),
        ),
        (
            "json without content type",
            h.request(Method::PUT, &path).body(r#"{"plan":"hare-1"}"#),
        ),
    ];
    for (what, request) in attempts {
        let (status, body) = status_and_json(request.send().await.expect("an answer")).await;
        assert_eq!(status, 400, "{what}: {body}");
        assert!(!error_of(&body).is_empty(), "{what}: {body}");
    }
    assert!(h.fake.plan_changes().is_empty());
    assert_eq!(h.fake.put_attempts(), 5);
    h.running.stop().await;
}

#[tokio::test]
async fn rules_apply_in_production_order() {
    let h = spawn(|c| c.instances.push(SeedInstance::new(7, "tiny", "lemur"))).await;

    // 1. Unknown id wins over everything, even an unknown plan.
    assert_eq!(
        h.put_plan(1, "no-such-plan").await,
        (404, json!({"error": "Invalid ID"}))
    );
    // 2. Not ready wins over an unknown plan and a forbidden move.
    h.fake.set_ready(ID, false);
    assert_eq!(
        h.put_plan(ID, "no-such-plan").await,
        (422, json!({"error": PLEASE_WAIT}))
    );
    assert_eq!(
        h.put_plan(ID, "lemur").await,
        (422, json!({"error": PLEASE_WAIT}))
    );
    h.fake.set_ready(ID, true);
    // 3. Unknown plan, including non-broker catalogue entries, before move rules.
    for plan in ["no-such-plan", "bunny-2", "vpc", ""] {
        let (status, body) = h.put_plan(ID, plan).await;
        assert_eq!(status, 400, "{plan}: {body}");
        assert!(!error_of(&body).is_empty());
    }
    // 4. Dedicated → shared, even to another backend's shared plan.
    assert_eq!(
        h.put_plan(ID, "lemur").await,
        (422, json!({"error": TO_SHARED}))
    );
    assert_eq!(
        h.put_plan(ID, "lemming").await,
        (422, json!({"error": TO_SHARED}))
    );
    // 5. RabbitMQ shared → dedicated, and backend changes.
    let (status, body) = h.put_plan(7, "bunny-1").await;
    assert_eq!(status, 422);
    assert!(
        error_of(&body).contains("shared plan to a dedicated plan"),
        "{body}"
    );
    let (status, body) = h.put_plan(ID, "puffin-1").await;
    assert_eq!(status, 422);
    assert!(error_of(&body).contains("rabbitmq to lavinmq"), "{body}");

    assert!(h.fake.plan_changes().is_empty());
    assert_eq!(h.fake.put_attempts(), 11);
    assert_eq!(
        h.fake.instance(ID).map(|i| i.plan).as_deref(),
        Some("bunny-1")
    );
    h.running.stop().await;
}

#[tokio::test]
async fn allowed_moves() {
    let h = spawn(|c| {
        c.instances = vec![
            SeedInstance::new(1, "big", "rabbit-5"),
            SeedInstance::new(2, "shared", "lemur"),
            SeedInstance::new(3, "lavin", "lemming"),
        ];
    })
    .await;
    // Timeline::instant(): each change is done by the next request.
    for (id, plan, nodes) in [
        (1, "bunny-1", Some(1)),
        (1, "hippo-3", Some(3)),
        (2, "tiger", None),
        (3, "puffin-3", Some(3)),
    ] {
        assert_eq!(h.put_plan(id, plan).await.0, 200, "{id} → {plan}");
        assert_eq!(h.shown(id).await, (plan.to_owned(), true, nodes));
    }
    assert_eq!(h.fake.plan_changes().len(), 4);
    h.running.stop().await;
}

#[tokio::test]
async fn set_plan_applies_at_once_and_cancels_a_change_in_flight() {
    let (h, _clock) =
        super::support::spawn_on_manual_clock(cloudamqp_autoscaler::fake::Timeline::stuck()).await;
    assert_eq!(h.put_plan(ID, "hare-3").await.0, 200);
    assert!(!h.shown(ID).await.1);
    assert!(h.fake.set_plan(ID, "panda-5"));
    assert_eq!(h.shown(ID).await, ("panda-5".to_owned(), true, Some(5)));
    assert!(h.configured(ID).await.iter().all(|&c| c));
    assert!(!h.fake.set_plan(1, "hare-1"), "no such instance");
    // A console change is not an API change.
    assert_eq!(h.fake.plan_changes(), [(ID, "hare-3".to_owned())]);
    h.running.stop().await;
}
