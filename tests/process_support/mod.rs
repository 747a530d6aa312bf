//! Process-level harness: the built binary as its own process, against an in-process
//! fake CloudAMQP, its JSON log captured.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cloudamqp_autoscaler::fake::{FakeCloudAmqp, FakeConfig, RunningFake, SeedInstance, Timeline};
use serde_json::Value;

use crate::state_query;

pub const KEY: &str = "process-test-key-77e1";
pub const TOKEN: &str = "process-test-token-3b8c";
pub const ID: u64 = 359_559;
pub const MEMORY_85: &str = r#"{"alarm_type":"memory","value":85,"instance_id":359559}"#;
pub const WITHIN: Duration = Duration::from_secs(20);

pub struct Daemon {
    pub child: Child,
    pub base: String,
    pub log: Arc<Mutex<String>>,
}

impl Daemon {
    /// Starts `serve` on a free port with the state in `dir`, against `fake_url`.
    pub fn start(dir: &Path, fake_url: &str, live: bool) -> Self {
        Self::start_with(dir, fake_url, live, &[])
    }

    /// [`Self::start`] with extra environment variables, set last so that they win (e.g.
    /// `AUTOSCALER__CLOUDAMQP__REQUESTS_PER_SECOND`).
    pub fn start_with(dir: &Path, fake_url: &str, live: bool, env: &[(&str, &str)]) -> Self {
        let mut command = command(dir, fake_url, live, env);
        let mut child = command.spawn().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(event) = serde_json::from_str::<Value>(&line)
                    && event["message"] == "cloudamqp-autoscaler serving"
                {
                    let _ = addr_tx.send(event["addr"].as_str().unwrap_or_default().to_owned());
                }
                sink.lock().unwrap().push_str(&line);
                sink.lock().unwrap().push('\n');
            }
        });
        let addr = addr_rx
            .recv_timeout(WITHIN)
            .unwrap_or_else(|_| panic!("no start: {}", log.lock().unwrap()));
        Self {
            child,
            base: format!("http://{addr}"),
            log,
        }
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; its exit code.
    pub fn wait(&mut self) -> Option<i32> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(started.elapsed() < WITHIN, "did not exit: {}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The whole log holds neither the API key, nor the webhook token, nor instance
    /// credentials.
    pub fn assert_no_secrets(&self) {
        let log = self.log();
        for secret in [KEY, TOKEN, cloudamqp_autoscaler::fake::SECRET_MARKER] {
            assert!(!log.contains(secret), "{secret} in the log:\n{log}");
        }
    }

    pub async fn status(&self) -> Value {
        reqwest::get(format!("{}/status", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn alarm(&self, body: &str) -> u16 {
        reqwest::Client::new()
            .post(format!("{}/cloudamqp/alarm?token={TOKEN}", self.base))
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Posts an alarm; its status and, for a 202, the alarm id the daemon gave it.
    pub async fn post_alarm(&self, body: &str) -> (u16, Option<i64>) {
        let response = reqwest::Client::new()
            .post(format!("{}/cloudamqp/alarm?token={TOKEN}", self.base))
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let id = body["alarm_id"].as_str().and_then(|id| id.parse().ok());
        (status, id)
    }

    pub async fn wait_for(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let status = self.status().await;
            if done(&status) {
                return status;
            }
            assert!(
                started.elapsed() < WITHIN,
                "timed out waiting for {what}: {status:#}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `serve` on a free port with the state in `dir`, against `fake_url`, its log as JSON on a
/// piped stderr; `env` set last so that it wins. Not started.
pub fn command(dir: &Path, fake_url: &str, live: bool, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cloudamqp-autoscaler"));
    command.arg("serve").current_dir(dir);
    for (name, _) in std::env::vars() {
        if name.starts_with("AUTOSCALER__") || name.starts_with("CLOUDAMQP_") || name == "RUST_LOG"
        {
            command.env_remove(name);
        }
    }
    command
        .env("AUTOSCALER__SERVER__BIND", "127.0.0.1:0")
        .env("AUTOSCALER__CLOUDAMQP__API_URL", fake_url)
        .env(
            "AUTOSCALER__CLOUDAMQP__MANAGEMENT_URL",
            format!(
                "{}/management/{{id}}/api",
                fake_url.trim_end_matches('/').trim_end_matches("/api")
            ),
        )
        .env("AUTOSCALER__CLOUDAMQP__POLL_INTERVAL", "100ms")
        .env("AUTOSCALER__LIVE", live.to_string())
        .env("AUTOSCALER__LOG__FORMAT", "json")
        .env("CLOUDAMQP_API_KEY", KEY)
        .env("AUTOSCALER__SERVER__WEBHOOK_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

pub async fn fake(timeline: Timeline) -> (FakeCloudAmqp, RunningFake) {
    fake_with(timeline, vec![SeedInstance::new(ID, "prod", "bunny-1")]).await
}

/// A fake holding `instances`, started on a free port.
pub async fn fake_with(
    timeline: Timeline,
    instances: Vec<SeedInstance>,
) -> (FakeCloudAmqp, RunningFake) {
    let fake = FakeCloudAmqp::new(FakeConfig {
        api_key: KEY.into(),
        timeline,
        instances,
        ..FakeConfig::default()
    });
    let running = fake.start_local().await.unwrap();
    (fake, running)
}

pub fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/rules.toml"),
        dir.path().join("rules.toml"),
    )
    .unwrap();
    dir
}

/// Rows of `sql` on the state store under `dir` (`dir/state/autoscaler.sqlite3`), opened
/// read-only as an operator would, as JSON values.
pub fn query(dir: &Path, sql: &str) -> Vec<Vec<Value>> {
    state_query::query(&dir.join("state").join("autoscaler.sqlite3"), sql)
}
