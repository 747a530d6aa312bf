//! The built binary's `plans` and `check --online` against a fake CloudAMQP on a port.

use std::process::{Command, Output};

use cloudamqp_autoscaler::fake::{FakeCloudAmqp, FakeConfig, RunningFake};

const KEY: &str = "cli-test-key-8d2f";

async fn fake() -> (FakeCloudAmqp, RunningFake) {
    let fake = FakeCloudAmqp::new(FakeConfig {
        api_key: KEY.into(),
        ..FakeConfig::default()
    });
    let running = fake.start_local().await.unwrap();
    (fake, running)
}

/// Runs the binary with the API pointed at `url` and the given key (none: unset).
async fn run(url: &str, key: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cloudamqp-autoscaler"));
    command.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    for (name, _) in std::env::vars() {
        if name.starts_with("AUTOSCALER__") || name.starts_with("CLOUDAMQP_") {
            command.env_remove(name);
        }
    }
    command.env("AUTOSCALER__CLOUDAMQP__API_URL", url);
    if let Some(key) = key {
        command.env("CLOUDAMQP_API_KEY", key);
    }
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_lists_the_broker_catalogue_as_text_and_json() {
    let (fake, running) = fake().await;
    let out = run(&running.base_url(), Some(KEY), &["plans"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{stdout}");
    let bunny = lines
        .iter()
        .find(|l| l.starts_with("bunny-1 "))
        .expect("bunny-1 listed");
    assert!(
        bunny.contains("$99") && bunny.contains("rabbitmq") && bunny.ends_with("no"),
        "{bunny}"
    );
    assert!(
        !stdout.contains("vpc") && !stdout.contains("vpn"),
        "{stdout}"
    );

    let out = run(
        &running.base_url(),
        Some(KEY),
        &["plans", "--format", "json"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0));
    let plans: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let hare = plans.iter().find(|p| p["name"] == "hare-1").unwrap();
    assert_eq!(
        hare,
        &serde_json::json!({"name":"hare-1","price":199,"backend":"rabbitmq","shared":false})
    );
    // Sorted by price, broker plans only.
    let prices: Vec<f64> = plans.iter().map(|p| p["price"].as_f64().unwrap()).collect();
    assert!(prices.windows(2).all(|w| w[0] <= w[1]));

    let requests = fake.requests();
    assert!(requests.iter().all(|r| r.path == "/api/plans"
        && r.authorized
        && r.auth_scheme.as_deref() == Some("Basic")));
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_without_a_key_or_with_a_refused_key_exits_2_and_says_what_to_set() {
    let (fake, running) = fake().await;
    let out = run(&running.base_url(), None, &["plans"]).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cloudamqp.api_key") && stderr.contains("CLOUDAMQP_API_KEY"),
        "{stderr}"
    );
    assert!(fake.requests().is_empty(), "no request without a key");

    let out = run(&running.base_url(), Some("wrong-key-1234"), &["plans"]).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("refused the API key"), "{stderr}");
    assert!(
        !stderr.contains("wrong-key-1234"),
        "the key is never printed: {stderr}"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_online_passes_the_shipped_rules_against_the_production_catalogue() {
    let (_fake, running) = fake().await;
    let out = run(&running.base_url(), Some(KEY), &["check", "--online"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // The fake's instance has no alarms set up yet: `setup`'s drift warnings (tests/setup.rs)
    // are expected; no other warning is.
    assert!(
        text(&out.stdout)
            .lines()
            .filter(|l| l.contains("warning") && !l.starts_with("warning: instance "))
            .count()
            == 0,
        "{}",
        text(&out.stdout)
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_online_refuses_an_unknown_plan_and_warns_on_odd_ladders() {
    let (_fake, running) = fake().await;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[ladders]\nseed = [\"bunny-1\", \"bunny-2\"]\nmixed = [\"tiger\", \"hare-1\", \"bunny-1\"]\n",
    )
    .unwrap();
    let rules = rules.to_str().unwrap();
    let out = run(
        &running.base_url(),
        Some(KEY),
        &["check", "--online", "--rules", rules],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("{rules}:2:21: ladder \"seed\": plan \"bunny-2\" is not in the CloudAMQP catalogue; did you mean")),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 plan not in the live catalogue"),
        "{stderr}"
    );
    let stdout = text(&out.stdout);
    let warnings: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("mixed") && w.contains("shared")),
        "{stdout}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("mixed") && w.contains("price")),
        "{stdout}"
    );

    let out = run(
        &running.base_url(),
        Some(KEY),
        &["check", "--online", "--rules", rules, "--format", "json"],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let object: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(object["valid"], false);
    assert_eq!(object["online"]["errors"].as_array().unwrap().len(), 1);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_online_without_a_key_exits_2_but_offline_check_needs_none() {
    let (_fake, running) = fake().await;
    let out = run(&running.base_url(), None, &["check", "--online"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("CLOUDAMQP_API_KEY"));
    let out = run(&running.base_url(), None, &["check"]).await;
    assert_eq!(out.status.code(), Some(0));
    running.stop().await;
}
