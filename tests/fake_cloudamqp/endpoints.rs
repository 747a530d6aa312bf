//! The read endpoints answer with production's shapes; unknown ids, paths and methods answer
//! like production (404 "Invalid ID", 404, 405), and there is no plan endpoint under
//! `/actions`.

use cloudamqp_autoscaler::fake::{RABBITMQ, SECRET_MARKER, SeedInstance};
use reqwest::Method;
use serde_json::json;

use super::support::{ID, spawn};

#[tokio::test]
async fn instance_list_has_production_fields_and_no_credentials() {
    let h = spawn(|c| c.instances.push(SeedInstance::new(7, "tiny", "lemur"))).await;
    let (status, body) = h.get("/instances").await;
    assert_eq!(status, 200);
    let list = body.as_array().expect("an array");
    assert_eq!(list.len(), 2);
    let first = &list[0];
    assert_eq!(first["id"], json!(7));
    assert_eq!(first["plan"], json!("lemur"));
    for field in ["name", "region", "tags", "providerid", "vpc_id"] {
        assert!(first.get(field).is_some(), "{field} missing: {first}");
    }
    assert_eq!(
        list[1]["providerid"],
        json!(SeedInstance::new(ID, "", "").providerid)
    );
    assert!(!body.to_string().contains(SECRET_MARKER));
    h.running.stop().await;
}

#[tokio::test]
async fn full_instance_has_credentials_ready_backend_and_nodes_but_no_status() {
    let h = spawn(|c| c.instances.push(SeedInstance::new(7, "tiny", "lemur"))).await;
    let (status, body) = h.get(&format!("/instances/{ID}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], json!(ID));
    assert_eq!(body["plan"], json!("bunny-1"));
    assert_eq!(body["ready"], json!(true));
    assert_eq!(body["backend"], json!(RABBITMQ));
    assert_eq!(body["nodes"], json!(1));
    assert!(body.get("status").is_none());
    for secret in [
        &body["url"],
        &body["urls"]["external"],
        &body["urls"]["internal"],
        &body["apikey"],
    ] {
        assert!(
            secret.as_str().expect("a string").contains(SECRET_MARKER),
            "{secret}"
        );
    }
    let (_, shared) = h.get("/instances/7").await;
    assert!(
        shared.get("nodes").is_none(),
        "shared plans show no nodes: {shared}"
    );
    assert_eq!(shared["ready"], json!(true));
    h.running.stop().await;
}

#[tokio::test]
async fn nodes_one_entry_per_node() {
    let h = spawn(|c| c.instances = vec![SeedInstance::new(ID, "big", "hare-3")]).await;
    let (status, body) = h.get(&format!("/instances/{ID}/nodes")).await;
    assert_eq!(status, 200);
    let nodes = body.as_array().expect("an array");
    let names: Vec<&str> = nodes.iter().filter_map(|n| n["name"].as_str()).collect();
    assert_eq!(names, ["big-01", "big-02", "big-03"]);
    for node in nodes {
        assert_eq!(node["configured"], json!(true));
        assert_eq!(node["running"], json!(true));
        for field in [
            "hostname",
            "rabbitmq_version",
            "erlang_version",
            "disk_size",
            "availability_zone",
        ] {
            assert!(node.get(field).is_some(), "{field} missing: {node}");
        }
    }
    h.running.stop().await;
}

#[tokio::test]
async fn unknown_ids_are_invalid() {
    let h = spawn(|_| {}).await;
    for path in [
        "/instances/1",
        "/instances/1/nodes",
        "/instances/not-a-number",
    ] {
        assert_eq!(
            h.get(path).await,
            (404, json!({"error": "Invalid ID"})),
            "{path}"
        );
    }
    h.running.stop().await;
}

#[tokio::test]
async fn plans_are_sorted_by_price_include_non_broker_entries_and_filter_by_backend() {
    let h = spawn(|_| {}).await;
    let (status, body) = h.get("/plans").await;
    assert_eq!(status, 200);
    let plans = body.as_array().expect("an array");
    let prices: Vec<u64> = plans.iter().filter_map(|p| p["price"].as_u64()).collect();
    assert_eq!(prices.len(), plans.len());
    assert!(prices.windows(2).all(|w| w[0] <= w[1]), "{prices:?}");
    let named = |name: &str| plans.iter().find(|p| p["name"] == json!(name)).cloned();
    assert_eq!(
        named("bunny-1"),
        Some(json!({"name": "bunny-1", "price": 99, "backend": "rabbitmq", "shared": false}))
    );
    assert_eq!(
        named("hare-3").map(|p| p["price"].clone()),
        Some(json!(597))
    );
    assert_eq!(named("bunny-2"), None);
    assert!(named("lemming").is_some() && named("puffin-1").is_some());
    assert!(plans.iter().any(|p| p["backend"] == json!("vpc")));

    let (_, rabbit) = h.get("/plans?backend=rabbitmq").await;
    let rabbit = rabbit.as_array().expect("an array");
    assert!(!rabbit.is_empty());
    assert!(rabbit.iter().all(|p| p["backend"] == json!("rabbitmq")));
    assert_eq!(
        h.fake
            .requests()
            .last()
            .and_then(|r| r.query.clone())
            .as_deref(),
        Some("backend=rabbitmq")
    );
    h.running.stop().await;
}

#[tokio::test]
async fn there_is_no_plan_endpoint_under_actions() {
    let h = spawn(|_| {}).await;
    for method in [Method::GET, Method::POST, Method::PUT] {
        let response = h
            .request(method.clone(), &format!("/instances/{ID}/actions/upgrade"))
            .json(&json!({"plan": "hare-1"}))
            .send()
            .await
            .expect("an answer");
        assert_eq!(response.status().as_u16(), 404, "{method}");
    }
    assert!(h.fake.plan_changes().is_empty());
    assert_eq!(
        h.fake.instance(ID).map(|i| i.plan).as_deref(),
        Some("bunny-1")
    );
    h.running.stop().await;
}

#[tokio::test]
async fn unknown_paths_404_and_wrong_methods_405() {
    let h = spawn(|_| {}).await;
    let (status, body) = h.get("/nowhere").await;
    assert_eq!(status, 404);
    assert!(body.get("error").is_some(), "{body}");
    let outside_api = h
        .http
        .get(format!("http://{}/instances", h.running.addr()))
        .basic_auth("", Some(super::support::KEY))
        .send()
        .await
        .expect("an answer");
    assert_eq!(outside_api.status().as_u16(), 404);

    for (method, path, allow) in [
        (Method::DELETE, format!("/instances/{ID}"), "GET, PUT"),
        (Method::POST, "/instances".to_owned(), "GET"),
        (Method::PUT, "/plans".to_owned(), "GET"),
        (Method::PATCH, format!("/instances/{ID}/nodes"), "GET"),
    ] {
        let response = h
            .request(method.clone(), &path)
            .send()
            .await
            .expect("an answer");
        assert_eq!(response.status().as_u16(), 405, "{method} {path}");
        assert_eq!(
            response
                .headers()
                .get("allow")
                .and_then(|v| v.to_str().ok()),
            Some(allow)
        );
    }
    assert!(h.fake.instance(ID).is_some(), "DELETE did nothing");
    h.running.stop().await;
}

#[tokio::test]
async fn added_instances_are_served_and_snapshots_match_get() {
    let h = spawn(|_| {}).await;
    h.fake
        .add_instance(SeedInstance::new(42, "later", "rabbit-5"));
    let (status, body) = h.get("/instances/42").await;
    assert_eq!(status, 200);
    assert_eq!(body["nodes"], json!(5));
    let snapshot = h.fake.instance(42).expect("a snapshot");
    assert_eq!(snapshot.plan, "rabbit-5");
    assert_eq!(snapshot.node_count(), 5);
    assert!(snapshot.ready && snapshot.configured.iter().all(|&c| c));
    assert_eq!(h.fake.instance(43), None);
    h.running.stop().await;
}
