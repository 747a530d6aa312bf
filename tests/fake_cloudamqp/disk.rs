//! `PUT /api/instances/{id}/disk` with `{"extra_disk_size": N, "allow_downtime": false}`
//! answers 200 `{"message":"Disk resize started."}` and plays out on the change timeline:
//! during the lag every node still shows the old `additional_disk_size`, then the nodes roll
//! over one by one (the one being worked on `configured: false`), then every node is
//! configured with the new size. Only growing, only to an offered size, dedicated plans only,
//! one change at a time (plan changes included).

use std::time::Duration;

use cloudamqp_autoscaler::fake::{SeedInstance, Timeline};
use reqwest::Method;
use serde_json::{Value, json};

use super::support::{Harness, ID, TIMELINE, spawn, spawn_on_manual_clock, status_and_json};

const STARTED: &str = "Disk resize started.";
const PLEASE_WAIT: &str =
    "Please wait for your cluster to be configured before trying to update it";

async fn resize(h: &Harness, id: u64, body: Value) -> (u16, Value) {
    status_and_json(
        h.request(Method::PUT, &format!("/instances/{id}/disk"))
            .json(&body)
            .send()
            .await
            .expect("an answer"),
    )
    .await
}

fn grow(size: u64) -> Value {
    json!({"extra_disk_size": size, "allow_downtime": false})
}

/// `(configured, additional_disk_size)` of every node, from `GET …/nodes`.
async fn nodes(h: &Harness, id: u64) -> Vec<(bool, u64)> {
    let (status, body) = h.get(&format!("/instances/{id}/nodes")).await;
    assert_eq!(status, 200, "{body}");
    body.as_array()
        .expect("an array")
        .iter()
        .map(|node| {
            (
                node["configured"].as_bool().expect("configured"),
                node["additional_disk_size"].as_u64().expect("a size"),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_resize_is_tracked_to_completion_on_every_node() {
    let (h, clock) = spawn_on_manual_clock(TIMELINE).await;
    h.fake.set_plan(ID, "hare-3");
    assert_eq!(nodes(&h, ID).await, [(true, 0); 3]);
    assert_eq!(
        resize(&h, ID, grow(25)).await,
        (200, json!({"message": STARTED}))
    );
    assert_eq!(h.fake.disk_resizes(), [(ID, 25)]);

    // Lag: nothing shows yet.
    assert_eq!(nodes(&h, ID).await, [(true, 0); 3]);
    // One change at a time: another resize or a plan change is refused meanwhile.
    assert_eq!(
        resize(&h, ID, grow(50)).await,
        (422, json!({"error": PLEASE_WAIT}))
    );
    assert_eq!(
        h.put_plan(ID, "rabbit-3").await,
        (422, json!({"error": PLEASE_WAIT}))
    );

    // Reconfiguring: the nodes roll over in order, the instance is not ready.
    clock.advance(Duration::from_secs(30));
    assert_eq!(nodes(&h, ID).await, [(false, 0), (true, 0), (true, 0)]);
    assert!(!h.shown(ID).await.1);
    clock.advance(Duration::from_secs(90));
    assert_eq!(nodes(&h, ID).await, [(true, 25), (false, 0), (true, 0)]);
    clock.advance(Duration::from_secs(60));
    assert_eq!(nodes(&h, ID).await, [(true, 25), (true, 25), (false, 0)]);
    assert_eq!(h.fake.disk_sizes(ID), Some(vec![25, 25, 0]));
    assert_eq!(
        h.fake.instance(ID).and_then(|i| i.disk_resizing_to),
        Some(25)
    );

    // Done: every node configured with the new size; the plan is untouched.
    clock.advance(Duration::from_secs(30));
    assert_eq!(nodes(&h, ID).await, [(true, 25); 3]);
    assert_eq!(h.shown(ID).await, ("hare-3".to_owned(), true, Some(3)));
    assert_eq!(h.fake.disk_sizes(ID), Some(vec![25; 3]));
    assert_eq!(h.fake.instance(ID).and_then(|i| i.disk_resizing_to), None);

    // What the fake received: exactly the two PUTs of the disk, the first accepted.
    let puts: Vec<(Option<Value>, u16)> = h
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.path == format!("/api/instances/{ID}/disk"))
        .map(|r| (r.body, r.status))
        .collect();
    assert_eq!(puts, [(Some(grow(25)), 200), (Some(grow(50)), 422)]);

    // The next size is accepted once the first is done.
    assert_eq!(resize(&h, ID, grow(50)).await.0, 200);
    h.running.stop().await;
}

#[tokio::test]
async fn instant_is_done_by_the_next_request() {
    let h = spawn(|c| c.timeline = Timeline::instant()).await;
    assert_eq!(resize(&h, ID, grow(100)).await.0, 200);
    assert_eq!(nodes(&h, ID).await, [(true, 100)]);
    h.running.stop().await;
}

#[tokio::test]
async fn refusals() {
    let h = spawn(|c| c.instances.push(SeedInstance::new(7, "tiny", "lemur"))).await;
    let field = |name: &str| json!({"errors": [{"field": name}]});
    assert_eq!(
        resize(&h, 1, grow(25)).await,
        (404, json!({"error": "Invalid ID"}))
    );
    assert_eq!(
        resize(&h, 7, grow(25)).await,
        (
            422,
            json!({"error": "Disk resize is only available on dedicated plans"})
        )
    );
    assert_eq!(
        resize(&h, ID, grow(30)).await,
        (400, field("extra_disk_size"))
    );
    assert_eq!(
        resize(&h, ID, json!({"allow_downtime": false})).await,
        (400, field("extra_disk_size"))
    );
    assert_eq!(
        resize(
            &h,
            ID,
            json!({"extra_disk_size": 25, "allow_downtime": "maybe"})
        )
        .await,
        (400, field("allow_downtime"))
    );
    assert_eq!(
        resize(&h, ID, json!({"extra_disk_size": "25"})).await.0,
        200,
        "allow_downtime defaults to false; a numeric string is read as a form value would be"
    );
    h.fake.set_extra_disk(ID, 50);
    assert_eq!(
        resize(&h, ID, grow(25)).await,
        (
            422,
            json!({"error": "The disk can only grow: it has 50 GB of extra disk"})
        )
    );
    assert_eq!(
        resize(&h, ID, grow(50)).await,
        (
            422,
            json!({"error": "The disk already has 50 GB of extra disk"})
        )
    );
    h.fake.set_ready(ID, false);
    assert_eq!(
        resize(&h, ID, grow(100)).await,
        (422, json!({"error": PLEASE_WAIT}))
    );
    h.fake.set_ready(ID, true);

    // The provider's limit on how often: the resize to 25 above was moments ago.
    h.fake
        .set_disk_resize_interval(Duration::from_secs(6 * 3600));
    assert_eq!(
        resize(&h, ID, grow(100)).await,
        (
            422,
            json!({"error": "The disk can be resized once every 6 hours"})
        )
    );
    h.fake.set_disk_resize_interval(Duration::ZERO);
    assert_eq!(resize(&h, ID, grow(100)).await.0, 200);
    assert_eq!(h.fake.disk_resizes(), [(ID, 25), (ID, 100)]);

    let response = h
        .request(Method::GET, &format!("/instances/{ID}/disk"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(
        response
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok()),
        Some("PUT")
    );
    h.running.stop().await;
}
