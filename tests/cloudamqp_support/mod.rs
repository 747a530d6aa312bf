//! Shared set-up for the `cloudamqp_*` tests: a fake CloudAMQP and a client on one
//! manual clock, so retries and polling run instantly and their delays can be asserted.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use cloudamqp_autoscaler::clock::{ManualClock, SharedClock};
use cloudamqp_autoscaler::cloudamqp::CloudAmqpClient;
use cloudamqp_autoscaler::fake::{
    FakeCloudAmqp, FakeConfig, RecordedRequest, RunningFake, SeedInstance, Timeline,
    production_plans,
};
use cloudamqp_autoscaler::settings::CloudAmqpSettings;
use jiff::Timestamp;
use secrecy::SecretString;

/// The account key the fake accepts.
pub const KEY: &str = "test-customer-key-5b1e9c";
/// The instance every harness starts with, on `bunny-1`.
pub const ID: u64 = 359_559;

pub fn start_time() -> Timestamp {
    "2026-11-26T17:00:00Z".parse().unwrap()
}

/// Production-like settings pointed at `url`, with a rate limit high enough that it never
/// shows in the recorded sleeps (the rate-limit test sets its own).
pub fn settings(url: &str) -> CloudAmqpSettings {
    CloudAmqpSettings {
        api_url: url.to_owned(),
        api_key: Some(SecretString::from(KEY)),
        default_instance: None,
        poll_interval: Duration::from_secs(15),
        change_timeout: Duration::from_secs(3600),
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(10),
        retry_deadline: Duration::from_secs(300),
        requests_per_second: 10_000,
        management_url: "https://{host}/api".to_owned(),
        management_timeout: Duration::from_secs(10),
    }
}

pub struct Harness {
    pub fake: FakeCloudAmqp,
    pub running: RunningFake,
    pub clock: Arc<ManualClock>,
    pub settings: CloudAmqpSettings,
    pub client: CloudAmqpClient,
}

impl Harness {
    /// A fake with `timeline` and one instance [`ID`] on `bunny-1`.
    pub async fn new(timeline: Timeline) -> Self {
        Self::with(timeline, |_| {}).await
    }

    /// Like [`Harness::new`], with the client settings adjusted by `adjust`.
    pub async fn with(timeline: Timeline, adjust: impl FnOnce(&mut CloudAmqpSettings)) -> Self {
        let clock = ManualClock::new(start_time());
        let shared: SharedClock = clock.clone();
        let fake = FakeCloudAmqp::new(FakeConfig {
            api_key: KEY.to_owned(),
            timeline,
            instances: vec![SeedInstance::new(ID, "prod", "bunny-1")],
            plans: production_plans(),
            clock: shared.clone(),
        });
        let running = fake.start_local().await.unwrap();
        let mut settings = settings(&running.base_url());
        adjust(&mut settings);
        let client = CloudAmqpClient::new(&settings, shared).unwrap();
        Self {
            fake,
            running,
            clock,
            settings,
            client,
        }
    }

    /// The recorded requests to `path` (without `/api`), e.g. `/instances`.
    pub fn requests_to(&self, method: &str, path: &str) -> Vec<RecordedRequest> {
        let full = format!("/api{path}");
        self.fake
            .requests()
            .into_iter()
            .filter(|r| r.method == method && r.path == full)
            .collect()
    }

    /// The statuses the fake sent, in order (0: no answer, connection dropped).
    pub fn statuses(&self) -> Vec<u16> {
        self.fake.requests().iter().map(|r| r.status).collect()
    }
}

pub fn secs(list: &[u64]) -> Vec<Duration> {
    list.iter().map(|s| Duration::from_secs(*s)).collect()
}
