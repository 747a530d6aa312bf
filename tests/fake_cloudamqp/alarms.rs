//! Alarms and webhook recipients answer with the shapes and status codes of the Terraform
//! provider's recorded traffic: recipients POST 201 / PUT 200 / DELETE 204, alarms POST 201 /
//! PUT **201** / DELETE 204; the notice alarm exists, can be updated, never created or
//! deleted; shared plans have no cpu/memory/disk/netsplit/server_unreachable alarms;
//! validation errors are 400 `{"errors":[{"field":…}]}`, other refusals 422 `{"error":…}`.

use std::time::Duration;

use cloudamqp_autoscaler::fake::{
    FakeAlarm, FakeRecipient, Fault, FaultRule, NOTICE_CANNOT_BE_CREATED, NOTICE_CANNOT_BE_DELETED,
    PathMatch, SeedInstance,
};
use reqwest::Method;
use serde_json::{Value, json};

use super::support::{Harness, ID, KEY, spawn, status_and_json};

/// The default recipient and notice alarm of the first instance whose board is used.
const DEFAULT_RECIPIENT: u64 = 661;
const NOTICE: u64 = 679;

async fn send(h: &Harness, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = h.request(method, path);
    if let Some(body) = body {
        request = request.json(&body);
    }
    status_and_json(request.send().await.expect("an answer")).await
}

fn webhook_body() -> Value {
    json!({"type": "webhook", "value": "https://hooks.example/cloudamqp/alarm?token=s3cret",
           "name": "cloudamqp-autoscaler", "options": {}})
}

#[tokio::test]
async fn a_new_instance_has_the_default_recipient_and_the_notice_alarm() {
    let h = spawn(|_| {}).await;
    let recipients = format!("/instances/{ID}/alarms/recipients");
    assert_eq!(
        h.get(&recipients).await,
        (
            200,
            json!([{"id": DEFAULT_RECIPIENT, "type": "email", "value": "team@example.com",
                    "name": "Default", "options": null, "last_status": null}])
        )
    );
    assert_eq!(
        h.get(&format!("/instances/{ID}/alarms")).await,
        (
            200,
            json!([{"id": NOTICE, "type": "notice", "reminder_interval": null,
                    "recipients": [], "enabled": true}])
        )
    );
    let alarms = h.fake.alarms(ID).expect("the instance exists");
    assert_eq!(alarms.len(), 1);
    assert_eq!(alarms[0].alarm_type, "notice");
    assert_eq!(h.fake.alarms(1), None);
    assert_eq!(h.fake.recipients(1), None);
    h.running.stop().await;
}

#[tokio::test]
async fn a_webhook_recipient_is_created_updated_and_deleted() {
    let h = spawn(|_| {}).await;
    let list = format!("/instances/{ID}/alarms/recipients");
    let (status, created) = send(&h, Method::POST, &list, Some(webhook_body())).await;
    assert_eq!(status, 201, "{created}");
    let rid = created["id"].as_u64().expect("an id");
    let mut expected = webhook_body();
    expected["id"] = json!(rid);
    assert_eq!(created, expected, "the object sent, with its id");

    // GET shows the value in clear, token included, and last_status.
    let mut full = expected.clone();
    full["last_status"] = Value::Null;
    let (_, listed) = h.get(&list).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(2));
    assert_eq!(listed[1], full);
    let one = format!("{list}/{rid}");
    assert_eq!(h.get(&one).await, (200, full.clone()));

    // PUT: the full object both ways, 200.
    let mut changed = full.clone();
    changed["value"] = json!("https://hooks.example/cloudamqp/alarm?token=n3w");
    assert_eq!(
        send(&h, Method::PUT, &one, Some(changed.clone())).await,
        (200, changed.clone())
    );
    assert_eq!(
        h.fake.recipients(ID).expect("the instance")[1].value,
        "https://hooks.example/cloudamqp/alarm?token=n3w"
    );

    // DELETE: 204 with no body; then it is gone.
    let response = h
        .request(Method::DELETE, &one)
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status().as_u16(), 204);
    assert!(response.text().await.expect("a body").is_empty());
    assert_eq!(h.get(&one).await, (404, json!({"error": "Invalid ID"})));

    let writes: Vec<(String, String, Option<Value>, u16)> = h
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| (r.method, r.path, r.body, r.status))
        .collect();
    let path = format!("/api{list}");
    assert_eq!(
        writes,
        [
            ("POST".to_owned(), path.clone(), Some(webhook_body()), 201),
            (
                "PUT".to_owned(),
                format!("{path}/{rid}"),
                Some(changed),
                200
            ),
            ("DELETE".to_owned(), format!("{path}/{rid}"), None, 204),
        ]
    );
    h.running.stop().await;
}

#[tokio::test]
async fn recipient_validation_errors_name_the_fields() {
    let h = spawn(|_| {}).await;
    let list = format!("/instances/{ID}/alarms/recipients");
    let errors = |fields: &[&str]| json!({"errors": fields.iter().map(|f| json!({"field": f})).collect::<Vec<_>>()});
    assert_eq!(
        send(
            &h,
            Method::POST,
            &list,
            Some(json!({"type": "pigeon", "value": "x"}))
        )
        .await,
        (400, errors(&["type"]))
    );
    assert_eq!(
        send(
            &h,
            Method::POST,
            &list,
            Some(json!({"type": "webhook", "value": "not a url"}))
        )
        .await,
        (400, errors(&["value"]))
    );
    assert_eq!(
        send(&h, Method::POST, &list, Some(json!({"options": 3}))).await,
        (400, errors(&["type", "value", "options"]))
    );
    // No JSON content type: nothing is read, as production's framework would not.
    let (status, body) = status_and_json(
        h.request(Method::POST, &list)
            .body(webhook_body().to_string())
            .send()
            .await
            .expect("an answer"),
    )
    .await;
    assert_eq!((status, body), (400, errors(&["type", "value"])));
    assert_eq!(
        send(
            &h,
            Method::PUT,
            &format!("{list}/999"),
            Some(webhook_body())
        )
        .await,
        (404, json!({"error": "Invalid ID"}))
    );
    assert_eq!(
        send(
            &h,
            Method::PUT,
            &format!("{list}/{DEFAULT_RECIPIENT}"),
            Some(json!({"type": 1}))
        )
        .await,
        (400, errors(&["type"]))
    );
    assert_eq!(
        h.fake.recipients(ID).map(|r| r.len()),
        Some(1),
        "nothing was created"
    );
    h.running.stop().await;
}

#[tokio::test]
async fn an_alarm_is_created_read_updated_with_201_and_deleted() {
    let h = spawn(|_| {}).await;
    let rid = h
        .fake
        .seed_recipient(
            ID,
            FakeRecipient::webhook("https://hooks.example/a?token=t", "cloudamqp-autoscaler"),
        )
        .expect("the instance");
    let list = format!("/instances/{ID}/alarms");
    let sent = json!({"type": "cpu", "enabled": true, "reminder_interval": 0,
                      "value_threshold": 90, "time_threshold": 600, "recipients": [rid]});
    let (status, created) = send(&h, Method::POST, &list, Some(sent.clone())).await;
    assert_eq!(status, 201, "{created}");
    let aid = created["id"].as_u64().expect("an id");
    let mut expected = sent.clone();
    expected["id"] = json!(aid);
    assert_eq!(created, expected, "the same plus id");

    let (_, listed) = h.get(&list).await;
    assert_eq!(listed[1], expected);
    let one = format!("{list}/{aid}");
    assert_eq!(h.get(&one).await, (200, expected.clone()));

    let mut update = expected.clone();
    update["value_threshold"] = json!(80);
    update["reminder_interval"] = json!(300);
    assert_eq!(
        send(&h, Method::PUT, &one, Some(update.clone())).await,
        (201, update.clone()),
        "PUT alarm answers 201 with the full object"
    );
    let stored = &h.fake.alarms(ID).expect("the instance")[1];
    assert_eq!(
        (stored.value_threshold, stored.reminder_interval),
        (Some(80), Some(300))
    );

    let response = h
        .request(Method::DELETE, &one)
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status().as_u16(), 204);
    assert_eq!(h.get(&one).await, (404, json!({"error": "Invalid ID"})));
    assert_eq!(
        h.fake.alarms(ID).map(|a| a.len()),
        Some(1),
        "only notice is left"
    );

    let posts: Vec<_> = h
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(posts.len(), 1, "exactly one POST");
    assert_eq!(posts[0].body.as_ref(), Some(&sent));
    assert!(posts[0].authorized);
    assert_eq!(posts[0].auth_scheme.as_deref(), Some("Basic"));
    h.running.stop().await;
}

#[tokio::test]
async fn the_notice_alarm_can_be_updated_never_created_or_deleted() {
    let h = spawn(|_| {}).await;
    let list = format!("/instances/{ID}/alarms");
    assert_eq!(
        send(
            &h,
            Method::POST,
            &list,
            Some(json!({"type": "notice", "recipients": []}))
        )
        .await,
        (422, json!({"error": NOTICE_CANNOT_BE_CREATED}))
    );
    let one = format!("{list}/{NOTICE}");
    assert_eq!(
        send(&h, Method::DELETE, &one, None).await,
        (422, json!({"error": NOTICE_CANNOT_BE_DELETED}))
    );
    assert_eq!(
        send(
            &h,
            Method::PUT,
            &one,
            Some(json!({"enabled": false, "recipients": [DEFAULT_RECIPIENT]}))
        )
        .await,
        (
            201,
            json!({"id": NOTICE, "type": "notice", "reminder_interval": null,
                   "recipients": [DEFAULT_RECIPIENT], "enabled": false})
        )
    );
    assert_eq!(h.fake.alarms(ID).map(|a| a.len()), Some(1));
    h.running.stop().await;
}

#[tokio::test]
async fn a_shared_plan_refuses_dedicated_only_alarms() {
    let h = spawn(|c| c.instances = vec![SeedInstance::new(7, "tiny", "lemur")]).await;
    let list = "/instances/7/alarms";
    for kind in ["cpu", "memory", "disk", "netsplit", "server_unreachable"] {
        let body = json!({"type": kind, "value_threshold": 90, "time_threshold": 600});
        assert_eq!(
            send(&h, Method::POST, list, Some(body)).await,
            (
                422,
                json!({"error": format!("Alarm type {kind} is only available on dedicated plans")})
            ),
            "{kind}"
        );
    }
    let queue = json!({"type": "queue", "value_threshold": 1000, "time_threshold": 60,
                       "queue_regex": ".*", "vhost_regex": ".*", "message_type": "total"});
    let (status, created) = send(&h, Method::POST, list, Some(queue.clone())).await;
    assert_eq!(status, 201, "{created}");
    let mut expected = queue;
    expected["id"] = created["id"].clone();
    expected["reminder_interval"] = json!(0);
    expected["recipients"] = json!([]);
    expected["enabled"] = json!(true);
    assert_eq!(
        created, expected,
        "defaults: reminder 0, every recipient, enabled"
    );
    h.running.stop().await;
}

#[tokio::test]
async fn alarm_validation_errors_name_the_fields() {
    let h = spawn(|_| {}).await;
    let list = format!("/instances/{ID}/alarms");
    let errors = |fields: &[&str]| json!({"errors": fields.iter().map(|f| json!({"field": f})).collect::<Vec<_>>()});
    assert_eq!(
        send(&h, Method::POST, &list, Some(json!({"type": "weather"}))).await,
        (400, errors(&["type"]))
    );
    assert_eq!(
        send(&h, Method::POST, &list, Some(json!({"type": "cpu"}))).await,
        (400, errors(&["value_threshold"]))
    );
    assert_eq!(
        send(
            &h,
            Method::POST,
            &list,
            Some(
                json!({"type": "memory", "value_threshold": 101, "time_threshold": -5,
                        "recipients": [12345]})
            )
        )
        .await,
        (
            400,
            errors(&["time_threshold", "value_threshold", "recipients"])
        )
    );
    assert_eq!(
        send(
            &h,
            Method::PUT,
            &format!("{list}/{NOTICE}"),
            Some(json!({"type": "cpu"}))
        )
        .await,
        (400, errors(&["type"])),
        "the type of an alarm cannot change"
    );
    assert_eq!(
        send(
            &h,
            Method::PUT,
            &format!("{list}/4242"),
            Some(json!({"enabled": true}))
        )
        .await,
        (404, json!({"error": "Invalid ID"}))
    );
    assert_eq!(
        send(&h, Method::DELETE, &format!("{list}/4242"), None).await,
        (404, json!({"error": "Invalid ID"}))
    );
    // Without a time_threshold a threshold alarm gets 600 s.
    let (status, created) = send(
        &h,
        Method::POST,
        &list,
        Some(json!({"type": "disk", "value_threshold": 15})),
    )
    .await;
    assert_eq!((status, &created["time_threshold"]), (201, &json!(600)));
    h.running.stop().await;
}

#[tokio::test]
async fn unknown_instances_methods_and_credentials() {
    let h = spawn(|_| {}).await;
    for path in [
        "/instances/1/alarms",
        "/instances/1/alarms/679",
        "/instances/1/alarms/recipients",
        "/instances/1/alarms/recipients/661",
        "/instances/x/alarms",
    ] {
        assert_eq!(
            h.get(path).await,
            (404, json!({"error": "Invalid ID"})),
            "{path}"
        );
    }
    assert_eq!(
        h.get(&format!("/instances/{ID}/alarms/abc")).await,
        (404, json!({"error": "Invalid ID"}))
    );
    let response = h
        .request(Method::DELETE, &format!("/instances/{ID}/alarms"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(
        response
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok()),
        Some("GET, POST")
    );
    let response = h
        .http
        .post(h.url(&format!("/instances/{ID}/alarms")))
        .bearer_auth(KEY)
        .json(&json!({"type": "cpu", "value_threshold": 90}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(
        response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some(r#"Basic realm="Customer API""#)
    );
    assert_eq!(
        h.fake.alarms(ID).map(|a| a.len()),
        Some(1),
        "nothing was created"
    );
    let last = h.fake.requests().pop().expect("recorded");
    assert_eq!(
        (last.authorized, last.auth_scheme.as_deref(), last.status),
        (false, Some("Bearer"), 401)
    );
    h.running.stop().await;
}

#[tokio::test]
async fn others_alarms_can_be_seeded_and_deleting_a_recipient_unnames_it() {
    let h = spawn(|_| {}).await;
    let theirs = h
        .fake
        .seed_recipient(ID, FakeRecipient::email("ops@example.com", "ops"))
        .expect("the instance");
    let aid = h
        .fake
        .seed_alarm(
            ID,
            FakeAlarm::new("memory")
                .thresholds(70, 300)
                .recipients(&[theirs]),
        )
        .expect("the instance");
    assert_eq!(
        h.get(&format!("/instances/{ID}/alarms/{aid}")).await,
        (
            200,
            json!({"id": aid, "type": "memory", "value_threshold": 70, "time_threshold": 300,
                   "reminder_interval": 0, "recipients": [theirs], "enabled": true})
        )
    );
    let path = format!("/instances/{ID}/alarms/recipients/{theirs}");
    assert_eq!(send(&h, Method::DELETE, &path, None).await.0, 204);
    let alarm = h
        .fake
        .alarms(ID)
        .expect("the instance")
        .pop()
        .expect("an alarm");
    assert_eq!((alarm.id, alarm.recipients), (aid, vec![]));
    h.running.stop().await;
}

#[tokio::test]
async fn faults_hit_the_alarm_routes_and_a_slow_post_still_creates() {
    let h = spawn(|_| {}).await;
    let list = format!("/instances/{ID}/alarms/recipients");
    h.fake.inject(
        FaultRule::once(Fault::ServiceUnavailable)
            .method("POST")
            .path(PathMatch::Exact(format!("/api{list}"))),
    );
    assert_eq!(h.get(&list).await.0, 200, "GET is not matched");
    assert_eq!(
        send(&h, Method::POST, &list, Some(webhook_body())).await.0,
        503
    );
    assert_eq!(
        h.fake.recipients(ID).map(|r| r.len()),
        Some(1),
        "a 503 creates nothing"
    );

    // A POST whose answer is lost: applied, but the client never hears it.
    h.fake.inject(
        FaultRule::once(Fault::Slow(Duration::from_secs(2)))
            .method("POST")
            .path(PathMatch::Exact(format!("/api{list}"))),
    );
    let lost = h
        .request(Method::POST, &list)
        .json(&webhook_body())
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(lost.is_err(), "the client timed out");
    let recipients = h.fake.recipients(ID).expect("the instance");
    assert_eq!(
        recipients.len(),
        2,
        "created all the same: list before retrying"
    );
    assert_eq!(recipients[1].name, "cloudamqp-autoscaler");

    h.fake.inject(
        FaultRule::once(Fault::Respond {
            status: 400,
            body: json!({"errors": [{"field": "value"}]}),
        })
        .path(PathMatch::Prefix(format!("/api/instances/{ID}/alarms"))),
    );
    assert_eq!(
        h.get(&format!("/instances/{ID}/alarms")).await,
        (400, json!({"errors": [{"field": "value"}]}))
    );
    let statuses: Vec<u16> = h.fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 503, 201, 400]);
    h.running.stop().await;
}
