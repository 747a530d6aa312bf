//! A fake per test, and a client that speaks to it the way production expects.

use std::sync::Arc;
use std::time::Duration;

use cloudamqp_autoscaler::clock::ManualClock;
use cloudamqp_autoscaler::fake::{FakeCloudAmqp, FakeConfig, RunningFake, SeedInstance, Timeline};
use jiff::Timestamp;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;

pub const KEY: &str = "test-key-3f9a";
pub const ID: u64 = 359_559;

/// A running fake and a client for it.
pub struct Harness {
    pub fake: FakeCloudAmqp,
    pub running: RunningFake,
    pub http: reqwest::Client,
}

/// A fake with `KEY`, instance `ID` on `bunny-1`, and whatever `tweak` changes.
pub async fn spawn(tweak: impl FnOnce(&mut FakeConfig)) -> Harness {
    let mut config = FakeConfig {
        api_key: KEY.to_owned(),
        instances: vec![SeedInstance::new(ID, "bunny1-test", "bunny-1")],
        ..FakeConfig::default()
    };
    tweak(&mut config);
    let fake = FakeCloudAmqp::new(config);
    let running = fake.start_local().await.expect("the fake starts");
    let http = reqwest::Client::builder()
        .user_agent("fake-tests/1")
        .build()
        .expect("a client");
    Harness {
        fake,
        running,
        http,
    }
}

/// A fake whose timeline runs on a manual clock, with that clock.
pub async fn spawn_on_manual_clock(timeline: Timeline) -> (Harness, Arc<ManualClock>) {
    let start: Timestamp = "2026-11-26T17:00:00Z".parse().expect("a timestamp");
    let clock = ManualClock::new(start);
    let shared = clock.clone();
    let harness = spawn(move |config| {
        config.timeline = timeline;
        config.clock = shared;
    })
    .await;
    (harness, clock)
}

impl Harness {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.running.base_url())
    }

    /// A request with production's credentials: Basic, empty user, the key as password.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, self.url(path))
            .basic_auth("", Some(KEY))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        status_and_json(
            self.request(Method::GET, path)
                .send()
                .await
                .expect("an answer"),
        )
        .await
    }

    pub async fn put_plan(&self, id: u64, plan: &str) -> (u16, Value) {
        let body = serde_json::json!({ "plan": plan });
        let response = self
            .request(Method::PUT, &format!("/instances/{id}"))
            .json(&body)
            .send()
            .await
            .expect("an answer");
        status_and_json(response).await
    }

    /// `GET /api/instances/{id}` as (plan, ready, nodes field).
    pub async fn shown(&self, id: u64) -> (String, bool, Option<u64>) {
        let (status, body) = self.get(&format!("/instances/{id}")).await;
        assert_eq!(status, 200, "{body}");
        (
            body["plan"].as_str().unwrap_or_default().to_owned(),
            body["ready"].as_bool().expect("ready is a bool"),
            body["nodes"].as_u64(),
        )
    }

    /// The `configured` flag of every node from `GET /api/instances/{id}/nodes`.
    pub async fn configured(&self, id: u64) -> Vec<bool> {
        let (status, body) = self.get(&format!("/instances/{id}/nodes")).await;
        assert_eq!(status, 200, "{body}");
        body.as_array()
            .expect("an array")
            .iter()
            .map(|node| node["configured"].as_bool().expect("configured is a bool"))
            .collect()
    }
}

pub async fn status_and_json(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, json)
}

pub const TIMELINE: Timeline = Timeline {
    lag: Duration::from_secs(30),
    reconfigure: Duration::from_secs(180),
    stuck: false,
};
