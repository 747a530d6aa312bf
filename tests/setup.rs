//! `setup` and `check --online`'s alarm drift, black-box: the built binary against a fake
//! CloudAMQP on a port; what it wrote is read back from the fake.

mod cli_support;

use std::process::Output;

use cloudamqp_autoscaler::fake::{
    FakeAlarm, FakeCloudAmqp, FakeConfig, FakeRecipient, Fault, FaultRule, PathMatch, RunningFake,
    SeedInstance,
};
use serde_json::json;

const KEY: &str = "setup-test-key-51c0";
const TOKEN: &str = "wh-token-9f3e7";
const URL: &str = "https://hooks.example/cloudamqp/alarm";
const ID: u64 = 359_559;
const OTHER: u64 = 1001;
const SHARED: u64 = 1002;

const RULES: &str = r#"
[ladders]
single = ["bunny-1", "hare-1", "rabbit-1"]

[[rules]]
name = "memory-high"
alarm = "memory"
above = 80
ladder = "single"

[[rules]]
name = "cpu-high"
alarm = "cpu"
above = 90
ladder = "single"

[alarms.memory]
reminder_interval = "15m"
"#;

struct Env {
    fake: FakeCloudAmqp,
    running: RunningFake,
    dir: tempfile::TempDir,
    key: String,
    token: Option<String>,
}

async fn env(instances: &[(u64, &str, &str)]) -> Env {
    let mut config = FakeConfig {
        api_key: KEY.into(),
        ..FakeConfig::default()
    };
    for &(id, name, plan) in instances {
        config.instances.push(SeedInstance::new(id, name, plan));
    }
    let fake = FakeCloudAmqp::new(config);
    let running = fake.start_local().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.toml"), RULES).unwrap();
    Env {
        fake,
        running,
        dir,
        key: KEY.into(),
        token: Some(TOKEN.into()),
    }
}

impl Env {
    fn rules_path(&self) -> String {
        self.dir.path().join("rules.toml").display().to_string()
    }

    fn write_rules(&self, text: &str) {
        std::fs::write(self.dir.path().join("rules.toml"), text).unwrap();
    }

    /// The binary with `args` then `--rules <the rules file>`.
    async fn run(&self, args: &[&str]) -> Output {
        let rules = self.rules_path();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--rules", &rules]);
        let mut command = cli_support::command(&all);
        command
            .env("AUTOSCALER__CLOUDAMQP__API_URL", self.running.base_url())
            .env("AUTOSCALER__CLOUDAMQP__RETRY_DEADLINE", "2s")
            .env("CLOUDAMQP_API_KEY", &self.key);
        if let Some(token) = &self.token {
            command.env("AUTOSCALER__SERVER__WEBHOOK_TOKEN", token);
        }
        let output = tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap();
        let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
        assert!(
            !stdout.contains(TOKEN) && !stderr.contains(TOKEN) && !stderr.contains(KEY),
            "a secret was printed:\n{stdout}\n{stderr}"
        );
        output
    }

    async fn setup(&self, apply: bool) -> Output {
        let mut args = vec!["setup", "--url", URL];
        if apply {
            args.push("--apply");
        }
        self.run(&args).await
    }

    /// Requests other than GET, from request number `from` on.
    fn writes_since(&self, from: usize) -> Vec<String> {
        self.fake.requests()[from..]
            .iter()
            .filter(|r| r.method != "GET")
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    fn ours(&self, id: u64) -> Vec<FakeRecipient> {
        self.fake
            .recipients(id)
            .unwrap()
            .into_iter()
            .filter(|r| r.name == "cloudamqp-autoscaler" && r.recipient_type == "webhook")
            .collect()
    }

    fn alarms_of(&self, id: u64, kind: &str) -> Vec<FakeAlarm> {
        self.fake
            .alarms(id)
            .unwrap()
            .into_iter()
            .filter(|a| a.alarm_type == kind)
            .collect()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn expected_value(token: &str) -> String {
    format!("{URL}?token={token}")
}

/// The fields setup sets, of one alarm.
fn fields(alarm: &FakeAlarm) -> (Option<u64>, Option<u64>, Option<u64>, Vec<u64>, bool) {
    (
        alarm.value_threshold,
        alarm.time_threshold,
        alarm.reminder_interval,
        alarm.recipients.clone(),
        alarm.enabled,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_writes_nothing_apply_does_exactly_it_and_a_second_apply_nothing() {
    let e = env(&[]).await;
    let out = e.setup(false).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(e.writes_since(0).is_empty(), "{:?}", e.writes_since(0));
    for line in [
        "instance 359559 bunny1-test (bunny-1):",
        "+ create recipient cloudamqp-autoscaler (https://hooks.example/cloudamqp/alarm?token=…)",
        "+ create alarm cpu (value_threshold 90, time_threshold 300, reminder_interval 1800)",
        "+ create alarm memory (value_threshold 80, time_threshold 300, reminder_interval 900)",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "{line:?} missing:\n{stdout}"
        );
    }
    assert!(stdout.contains("--apply"), "{stdout}");

    let before = e.fake.requests().len();
    let out = e.setup(true).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert_eq!(
        e.writes_since(before),
        [
            "POST /api/instances/359559/alarms/recipients",
            "POST /api/instances/359559/alarms",
            "POST /api/instances/359559/alarms",
        ]
    );
    let ours = e.ours(ID);
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0].value, expected_value(TOKEN));
    let rid = ours[0].id;
    let memory = e.alarms_of(ID, "memory");
    let cpu = e.alarms_of(ID, "cpu");
    assert_eq!(memory.len(), 1);
    assert_eq!(
        fields(&memory[0]),
        (Some(80), Some(300), Some(900), vec![rid], true)
    );
    assert_eq!(cpu.len(), 1);
    assert_eq!(
        fields(&cpu[0]),
        (Some(90), Some(300), Some(1800), vec![rid], true)
    );
    assert!(
        stdout.contains(&format!("done: created alarm memory {}", memory[0].id)),
        "{stdout}"
    );

    let before = e.fake.requests().len();
    let out = e.setup(true).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(e.writes_since(before).is_empty());
    let lines: Vec<&str> = stdout.lines().skip(1).collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines.iter().all(|l| l.starts_with("= unchanged")),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_threshold_and_a_new_token_are_updated_in_place() {
    let mut e = env(&[]).await;
    assert_eq!(e.setup(true).await.status.code(), Some(0));
    let rid = e.ours(ID)[0].id;
    let memory_id = e.alarms_of(ID, "memory")[0].id;
    e.write_rules(&RULES.replace("above = 80", "above = 70"));
    e.token = Some("wh-token-new-22".into());

    let out = e.setup(false).await;
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "~ update recipient cloudamqp-autoscaler {rid} (value: {URL}?token=… -> {URL}?token=…, another token)"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "~ update alarm memory {memory_id} (value_threshold: 80 -> 70)"
        )),
        "{stdout}"
    );
    assert!(!stdout.contains("wh-token-new-22"));

    let before = e.fake.requests().len();
    let out = e.setup(true).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert_eq!(
        e.writes_since(before),
        [
            format!("PUT /api/instances/359559/alarms/recipients/{rid}"),
            format!("PUT /api/instances/359559/alarms/{memory_id}"),
        ]
    );
    let ours = e.ours(ID);
    assert_eq!(ours.len(), 1);
    assert_eq!(
        (ours[0].id, ours[0].value.as_str()),
        (rid, expected_value("wh-token-new-22").as_str())
    );
    let memory = e.alarms_of(ID, "memory");
    assert_eq!(memory.len(), 1);
    assert_eq!(
        (memory[0].id, memory[0].value_threshold),
        (memory_id, Some(70))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_of_others_are_never_touched() {
    let e = env(&[]).await;
    let ours = e
        .fake
        .seed_recipient(
            ID,
            FakeRecipient::webhook(&expected_value(TOKEN), "cloudamqp-autoscaler"),
        )
        .unwrap();
    let pager = e
        .fake
        .seed_recipient(
            ID,
            FakeRecipient::webhook("https://pager.example/hook", "pager"),
        )
        .unwrap();
    e.fake.seed_alarm(
        ID,
        FakeAlarm::new("memory")
            .thresholds(95, 60)
            .recipients(&[pager]),
    );
    e.fake.seed_alarm(
        ID,
        FakeAlarm::new("cpu")
            .thresholds(99, 60)
            .recipients(&[ours, pager]),
    );
    let before_alarms = e.fake.alarms(ID).unwrap();
    let before_recipients = e.fake.recipients(ID).unwrap();

    let out = e.setup(true).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let after = e.fake.alarms(ID).unwrap();
    for alarm in &before_alarms {
        assert!(after.contains(alarm), "{alarm:?} was changed: {after:?}");
    }
    assert_eq!(
        after.len(),
        before_alarms.len() + 2,
        "one memory and one cpu alarm of ours"
    );
    for kind in ["memory", "cpu"] {
        let mine: Vec<FakeAlarm> = e
            .alarms_of(ID, kind)
            .into_iter()
            .filter(|a| a.recipients == [ours])
            .collect();
        assert_eq!(mine.len(), 1, "{kind}: {after:?}");
    }
    let notice = e.alarms_of(ID, "notice");
    assert_eq!(notice.len(), 1);
    assert!(before_alarms.contains(&notice[0]));
    assert_eq!(
        e.fake.recipients(ID).unwrap(),
        before_recipients,
        "recipients untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_whose_answer_was_lost_is_not_duplicated() {
    let e = env(&[]).await;
    for path in [
        "/api/instances/359559/alarms/recipients",
        "/api/instances/359559/alarms",
    ] {
        e.fake.inject(
            FaultRule::once(Fault::DropAfterHandling)
                .method("POST")
                .path(PathMatch::Exact(path.into())),
        );
    }
    let out = e.setup(true).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert_eq!(e.fake.pending_faults(), 0, "both answers were lost");
    assert_eq!(
        e.ours(ID).len(),
        1,
        "one recipient: {:?}",
        e.fake.recipients(ID)
    );
    assert_eq!(e.alarms_of(ID, "cpu").len(), 1, "{:?}", e.fake.alarms(ID));
    assert_eq!(
        e.alarms_of(ID, "memory").len(),
        1,
        "{:?}",
        e.fake.alarms(ID)
    );
    assert_eq!(stdout.matches("listing found it").count(), 2, "{stdout}");
    let writes = e.writes_since(0);
    assert_eq!(writes.len(), 3, "nothing sent twice: {writes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_exit_1_and_the_other_instances_are_still_done() {
    let e = env(&[(OTHER, "prod-b", "hare-1"), (1003, "prod-c", "hare-1")]).await;
    e.fake.inject(
        FaultRule::once(Fault::Respond {
            status: 400,
            body: json!({"errors": [{"field": "value_threshold"}]}),
        })
        .method("POST")
        .path(PathMatch::Exact(format!("/api/instances/{OTHER}/alarms"))),
    );
    e.fake.inject(
        FaultRule::once(Fault::Respond {
            status: 422,
            body: json!({"error": "Alarms are being reconfigured"}),
        })
        .method("POST")
        .path(PathMatch::Exact(
            "/api/instances/1003/alarms/recipients".into(),
        )),
    );
    let out = e.setup(true).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("! CloudAMQP refused creating alarm cpu: HTTP 400")
            && stdout.contains("value_threshold"),
        "{stdout}"
    );
    assert!(
        stdout.contains("! CloudAMQP refused creating recipient cloudamqp-autoscaler: HTTP 422 Alarms are being reconfigured"),
        "{stdout}"
    );
    assert!(
        text(&out.stderr).contains("problem"),
        "{}",
        text(&out.stderr)
    );
    // The default instance is fully done, the refused one has its other alarm.
    assert_eq!(
        e.alarms_of(ID, "cpu").len() + e.alarms_of(ID, "memory").len(),
        2
    );
    assert_eq!(e.alarms_of(OTHER, "cpu").len(), 0);
    assert_eq!(e.alarms_of(OTHER, "memory").len(), 1);
    assert!(e.ours(1003).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_plan_is_said_per_instance_and_exits_1() {
    let e = env(&[(SHARED, "tiny", "lemur")]).await;
    let out = e.setup(true).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let section = stdout
        .split("instance 1002 tiny (lemur):")
        .nth(1)
        .expect("a heading for the shared instance");
    assert!(
        section.contains("! cpu: the plan lemur is shared"),
        "{stdout}"
    );
    assert!(
        section.contains("! memory: the plan lemur is shared"),
        "{stdout}"
    );
    assert!(e.ours(SHARED).is_empty(), "nothing to send it");
    assert_eq!(
        e.alarms_of(ID, "memory").len(),
        1,
        "the dedicated one is done"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_and_auth_failures_exit_2() {
    let mut e = env(&[]).await;
    e.key = "wrong-key-0000".into();
    let out = e.setup(true).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("refused the API key"),
        "{}",
        text(&out.stderr)
    );
    assert!(!text(&out.stderr).contains("wrong-key-0000"));
    e.key = KEY.into();

    for url in [
        "ftp://hooks.example/a",
        "/cloudamqp/alarm",
        "https://h/a?token=x",
    ] {
        let out = e.run(&["setup", "--url", url]).await;
        assert_eq!(out.status.code(), Some(2), "{url}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains("--url"), "{}", text(&out.stderr));
    }
    e.token = None;
    let out = e.setup(false).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("server.webhook_token"),
        "{}",
        text(&out.stderr)
    );
    assert!(e.writes_since(0).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_online_warns_about_drift_and_not_after_setup() {
    let e = env(&[]).await;
    let rid = e
        .fake
        .seed_recipient(
            ID,
            FakeRecipient::webhook(&expected_value(TOKEN), "cloudamqp-autoscaler"),
        )
        .unwrap();
    e.fake.seed_alarm(
        ID,
        FakeAlarm::new("memory")
            .thresholds(95, 300)
            .reminder_interval(900)
            .recipients(&[rid]),
    );
    let out = e.run(&["check", "--online"]).await;
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "warnings only: {stdout}{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("warning: instance 359559 bunny1-test: alarm memory")
            && stdout.contains("value_threshold 95 fires only above 95, the rules act above 80"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "warning: instance 359559 bunny1-test: no cpu alarm reaches cloudamqp-autoscaler"
        ),
        "{stdout}"
    );

    assert_eq!(e.setup(true).await.status.code(), Some(0));
    let out = e.run(&["check", "--online"]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(!stdout.contains("warning: instance"), "{stdout}");
}

/// A disk rule's alarm: the highest `below` of the type's rules (so the alarm fires for
/// every one of them), the disk rule's cooldown as the reminder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_rules_get_a_disk_alarm_at_their_highest_below() {
    let e = env(&[]).await;
    e.write_rules(&format!(
        "{RULES}\n[[rules]]\nname = \"disk-low\"\nalarm = \"disk\"\nbelow = 15\n\
         disk_sizes = [25, 50]\ncooldown = \"6h\"\n\n[[rules]]\nname = \"disk-very-low\"\n\
         alarm = \"disk\"\nbelow = 5\ndisk_sizes = [100]\ncooldown = \"2h\"\n"
    ));
    let out = e.setup(true).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout
            .lines()
            .any(|l| l == "+ create alarm disk (value_threshold 15, time_threshold 300, reminder_interval 21600)"),
        "{stdout}"
    );
    let rid = e.ours(ID)[0].id;
    let disk = e.alarms_of(ID, "disk");
    assert_eq!(disk.len(), 1);
    assert_eq!(
        fields(&disk[0]),
        (Some(15), Some(300), Some(21600), vec![rid], true)
    );
}

/// A key refused half-way (after the recipient was created): what was written is still
/// shown, the run stops there with exit 1 (not a configuration error), and a second run
/// once CloudAMQP answers again finishes the job without a second recipient.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stopped_half_way_shows_what_it_wrote_and_a_second_run_finishes() {
    let e = env(&[]).await;
    e.fake.inject(
        FaultRule::once(Fault::Unauthorized)
            .method("POST")
            .path(PathMatch::Exact("/api/instances/359559/alarms".into())),
    );
    let out = e.setup(true).await;
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("done: created recipient cloudamqp-autoscaler")),
        "{stdout}"
    );
    assert!(stderr.contains("setup stopped after 1 write"), "{stderr}");
    assert!(!stdout.contains(TOKEN) && !stderr.contains(TOKEN));
    assert!(e.alarms_of(ID, "memory").is_empty() && e.alarms_of(ID, "cpu").is_empty());

    let out = e.setup(true).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert_eq!(e.ours(ID).len(), 1, "the recipient is not made twice");
    assert_eq!(e.alarms_of(ID, "memory").len(), 1);
    assert_eq!(e.alarms_of(ID, "cpu").len(), 1);
}
