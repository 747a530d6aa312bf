//! Black-box harness: the real application on port 0, pointed at an in-process fake
//! CloudAMQP, talked to over HTTP.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cloudamqp_autoscaler::clock::SharedClock;
use cloudamqp_autoscaler::fake::{
    FakeCloudAmqp, FakeConfig, RecordedRequest, RunningFake, SeedInstance, Timeline,
};
use cloudamqp_autoscaler::settings::Settings;
use cloudamqp_autoscaler::startup::{AppHandle, Application, StartError, StartOptions};
use serde_json::Value;

use crate::state_query;

pub const KEY: &str = "daemon-test-key-0c9e";
pub const TOKEN: &str = "webhook-token-5f2a9d1c";
pub const ID: u64 = 359_559;
pub const MEMORY_85: &str = r#"{"alarm_type":"memory","value":85,"instance_id":359559}"#;

/// How a test app is started.
#[derive(Clone)]
pub struct Spawn {
    pub live: bool,
    pub api_key: bool,
    pub token: Option<String>,
    pub timeline: Timeline,
    /// Rules text; default: the shipped rules.toml.
    pub rules: Option<String>,
    pub queue_capacity: usize,
    pub max_concurrent: usize,
    pub poll_interval: &'static str,
    pub change_timeout: &'static str,
    pub instances: Vec<SeedInstance>,
    /// `cloudamqp.default_instance`, as `CLOUDAMQP_INSTANCE_ID`.
    pub default_instance: Option<String>,
    /// Reuse a state directory (restarts); default: a fresh one.
    pub state_dir: Option<PathBuf>,
    /// Reuse a fake (restarts); default: a fresh one.
    pub fake: Option<(FakeCloudAmqp, String)>,
    /// Extra environment, applied last so it wins over the settings above (e.g.
    /// `AUTOSCALER__CLOUDAMQP__REQUEST_TIMEOUT`); see [`Spawn::env`].
    pub env: Vec<(String, String)>,
    /// The application's clock; default: the system clock.
    pub clock: Option<SharedClock>,
}

impl Spawn {
    /// Adds an environment variable, e.g. `.env("AUTOSCALER__CLOUDAMQP__RETRY_DEADLINE", "2s")`.
    #[must_use]
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }
}

impl Default for Spawn {
    fn default() -> Self {
        Self {
            live: true,
            api_key: true,
            token: Some(TOKEN.into()),
            timeline: Timeline::instant(),
            rules: None,
            queue_capacity: 1024,
            max_concurrent: 256,
            poll_interval: "100ms",
            change_timeout: "30s",
            instances: vec![SeedInstance::new(ID, "prod", "bunny-1")],
            default_instance: None,
            state_dir: None,
            fake: None,
            env: Vec::new(),
            clock: None,
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub fake: FakeCloudAmqp,
    pub fake_url: String,
    running_fake: Option<RunningFake>,
    pub handle: AppHandle,
    pub dir: tempfile::TempDir,
    pub state_dir: PathBuf,
    pub rules_path: PathBuf,
    pub http: reqwest::Client,
    task: tokio::task::JoinHandle<Result<(), StartError>>,
}

/// Settings for a test app, as the environment would give them.
pub fn settings(spawn: &Spawn, fake_url: &str, state_dir: &Path, rules_path: &Path) -> Settings {
    let mut env = vec![
        (
            "AUTOSCALER__SERVER__BIND".to_owned(),
            "127.0.0.1:0".to_owned(),
        ),
        (
            "AUTOSCALER__CLOUDAMQP__API_URL".to_owned(),
            fake_url.to_owned(),
        ),
        (
            "AUTOSCALER__CLOUDAMQP__MANAGEMENT_URL".to_owned(),
            management_url(fake_url),
        ),
        (
            "AUTOSCALER__CLOUDAMQP__POLL_INTERVAL".to_owned(),
            spawn.poll_interval.to_owned(),
        ),
        (
            "AUTOSCALER__CLOUDAMQP__CHANGE_TIMEOUT".to_owned(),
            spawn.change_timeout.to_owned(),
        ),
        (
            "AUTOSCALER__CLOUDAMQP__REQUESTS_PER_SECOND".to_owned(),
            "1000".to_owned(),
        ),
        (
            "AUTOSCALER__CLOUDAMQP__REQUEST_TIMEOUT".to_owned(),
            "5s".to_owned(),
        ),
        (
            "AUTOSCALER__CLOUDAMQP__RETRY_DEADLINE".to_owned(),
            "20s".to_owned(),
        ),
        (
            "AUTOSCALER__SERVER__QUEUE_CAPACITY".to_owned(),
            spawn.queue_capacity.to_string(),
        ),
        ("AUTOSCALER__SERVER__WORKERS".to_owned(), "1".to_owned()),
        (
            "AUTOSCALER__STATE__DIR".to_owned(),
            state_dir.display().to_string(),
        ),
        (
            "AUTOSCALER__RULES__PATH".to_owned(),
            rules_path.display().to_string(),
        ),
        ("AUTOSCALER__LIVE".to_owned(), spawn.live.to_string()),
    ];
    if spawn.api_key {
        env.push(("CLOUDAMQP_API_KEY".to_owned(), KEY.to_owned()));
    }
    if let Some(instance) = &spawn.default_instance {
        env.push(("CLOUDAMQP_INSTANCE_ID".to_owned(), instance.clone()));
    }
    if let Some(token) = &spawn.token {
        env.push((
            "AUTOSCALER__SERVER__WEBHOOK_TOKEN".to_owned(),
            token.clone(),
        ));
    }
    env.extend(spawn.env.iter().cloned());
    Settings::load_from(None, env).expect("test settings are valid")
}

/// The fake's management API template, from its Customer API base URL
/// (`http://ADDR/api` → `http://ADDR/management/{id}/api`).
pub fn management_url(fake_url: &str) -> String {
    format!(
        "{}/management/{{id}}/api",
        fake_url.trim_end_matches('/').trim_end_matches("/api")
    )
}

pub async fn spawn_app(spawn: Spawn) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let (fake, fake_url, running_fake) = match &spawn.fake {
        Some((fake, url)) => (fake.clone(), url.clone(), None),
        None => {
            let fake = FakeCloudAmqp::new(FakeConfig {
                api_key: KEY.into(),
                timeline: spawn.timeline,
                instances: spawn.instances.clone(),
                ..FakeConfig::default()
            });
            let running = fake.start_local().await.unwrap();
            let url = running.base_url();
            (fake, url, Some(running))
        }
    };
    let state_dir = spawn
        .state_dir
        .clone()
        .unwrap_or_else(|| dir.path().join("state"));
    let rules_path = dir.path().join("rules.toml");
    let rules = match &spawn.rules {
        Some(text) => text.clone(),
        None => {
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/rules.toml")).unwrap()
        }
    };
    std::fs::write(&rules_path, rules).unwrap();
    let settings = settings(&spawn, &fake_url, &state_dir, &rules_path);
    let mut options = StartOptions {
        max_concurrent_decisions: spawn.max_concurrent,
        ..StartOptions::new(settings)
    };
    if let Some(clock) = &spawn.clock {
        options.clock = clock.clone();
    }
    let app = Application::build(options).await.expect("the app starts");
    // A wildcard bind (tests of reads off loopback) is reached through loopback.
    let addr = app.addr();
    let base = if addr.ip().is_unspecified() {
        format!("http://127.0.0.1:{}", addr.port())
    } else {
        format!("http://{addr}")
    };
    let handle = app.handle();
    let task = tokio::spawn(app.run_until_stopped());
    TestApp {
        base,
        fake,
        fake_url,
        running_fake,
        handle,
        dir,
        state_dir,
        rules_path,
        http: reqwest::Client::new(),
        task,
    }
}

impl TestApp {
    /// Posts an alarm with the right token.
    pub async fn alarm(&self, body: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/cloudamqp/alarm?token={TOKEN}", self.base))
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    pub async fn status(&self) -> Value {
        self.get("/status").await.json().await.unwrap()
    }

    pub async fn metrics(&self) -> String {
        self.get("/metrics").await.text().await.unwrap()
    }

    /// The instance's entry in `/status`.
    pub async fn instance(&self) -> Value {
        self.status().await["instances"][ID.to_string()].clone()
    }

    /// Polls `/status` until `done` holds for the instance (at most `within`).
    pub async fn wait_for(
        &self,
        what: &str,
        within: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let started = Instant::now();
        loop {
            let instance = self.instance().await;
            if done(&instance) {
                return instance;
            }
            assert!(
                started.elapsed() < within,
                "timed out waiting for {what}; instance: {instance:#}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits for the instance's last change to have a result.
    /// The Friday-evening alarm, its change completed, then a second one refused for the
    /// cooldown: a short history to look back at.
    pub async fn change_then_cooldown(&self) {
        let within = Duration::from_secs(20);
        assert_eq!(self.alarm(MEMORY_85).await.status(), 202);
        self.wait_for("the change to complete", within, |i| {
            i["last_change"]["result"] == "completed"
        })
        .await;
        assert_eq!(self.alarm(MEMORY_85).await.status(), 202);
        self.wait_for("the cooldown skip", within, |i| {
            i["last_decision"]["reason"] == "cooldown"
        })
        .await;
    }

    /// Polls `/status` until `done` holds for it (at most 15 s).
    pub async fn wait_for_status(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let status = self.status().await;
            if done(&status) {
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "timed out waiting for {what}: {status:#}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn wait_for_result(&self, within: Duration) -> Value {
        self.wait_for("a finished change", within, |i| {
            i["change"].is_null() && !i["last_change"].is_null()
        })
        .await
    }

    pub fn puts(&self) -> Vec<RecordedRequest> {
        self.fake
            .requests()
            .into_iter()
            .filter(|r| r.method == "PUT")
            .collect()
    }

    /// GETs of the instance object (reads and polls alike).
    pub fn instance_reads(&self) -> Vec<RecordedRequest> {
        let path = format!("/api/instances/{ID}");
        self.fake
            .requests()
            .into_iter()
            .filter(|r| r.method == "GET" && r.path == path)
            .collect()
    }

    /// Stops the app (as SIGTERM does) and waits for it; the state dir stays.
    pub async fn stop(self) -> Stopped {
        self.handle.shutdown();
        self.task.await.unwrap().expect("the app stops cleanly");
        Stopped {
            dir: self.dir,
            state_dir: self.state_dir,
            fake: self.fake,
            fake_url: self.fake_url,
            running_fake: self.running_fake,
        }
    }

    /// Reads the state store directly, as an operator would.
    pub fn query(&self, sql: &str) -> Vec<Vec<Value>> {
        query(&self.state_dir, sql)
    }
}

/// What is left of a stopped app, to restart on.
pub struct Stopped {
    pub dir: tempfile::TempDir,
    pub state_dir: PathBuf,
    pub fake: FakeCloudAmqp,
    pub fake_url: String,
    running_fake: Option<RunningFake>,
}

impl Stopped {
    /// Starts a new app on the same state and the same fake CloudAMQP.
    pub async fn restart(self, spawn: Spawn) -> TestApp {
        let mut app = spawn_app(Spawn {
            state_dir: Some(self.state_dir.clone()),
            fake: Some((self.fake.clone(), self.fake_url.clone())),
            ..spawn
        })
        .await;
        app.running_fake = self.running_fake;
        // Keep the old temporary directory (it holds the state) alive with the new app.
        app.dir = self.dir;
        app
    }

    /// Runs `sql` (one or more statements) on the stopped app's state store, as a test sets
    /// up what a crash or an older build would have left.
    pub fn write(&self, sql: &str) {
        rusqlite::Connection::open(self.state_dir.join("autoscaler.sqlite3"))
            .unwrap()
            .execute_batch(sql)
            .unwrap();
    }
}

/// Polls `done` every 25 ms, for at most 30 s.
pub async fn until(what: &str, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Rows of `sql` on the state store at `state_dir`, as JSON values.
pub fn query(state_dir: &Path, sql: &str) -> Vec<Vec<Value>> {
    state_query::query(&state_dir.join("autoscaler.sqlite3"), sql)
}
