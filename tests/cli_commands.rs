//! The built binary: `check` and `explain` exit codes and output, as a user sees them.

use std::process::Output;

#[path = "cli_support/mod.rs"]
mod support;

use support::run;

fn code(output: &Output) -> i32 {
    output.status.code().expect("exited")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_accepts_the_shipped_rules_with_exit_0() {
    let out = run(&["check"], None);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("rules.toml: valid: 2 ladders, 6 rules"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "rule memory-high: memory alarm above 80: climb 1 rung of single up to ape-1"
        ),
        "{stdout}"
    );
    // The shipped [scale_down] is an example, commented out.
    assert!(
        stdout.ends_with("  scale down: off (no [scale_down]: plans are never moved down)\n"),
        "{stdout}"
    );
}

#[test]
fn check_summarises_scale_down_in_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    let ladder_and_rule = "[ladders]\nsingle = [\"bunny-1\", \"hare-1\", \"rabbit-1\"]\n\n[[rules]]\nname = \"m\"\nalarm = \"memory\"\nladder = \"single\"\n";
    std::fs::write(
        &rules,
        format!(
            "{ladder_and_rule}\n[scale_down]\ninstances = [\"prod-*\", 359559]\ncheck_every = \"10m\"\nwindow = \"90m\"\nmemory_headroom = 62.5\nmin_plan = \"bunny-1\"\nmemory_limits = {{ \"rabbit-1\" = 8589934592, \"hare-1\" = \"3.2GiB\" }}\nhours = {{ days = [\"sat\", \"sun\"], from = \"02:00\", to = \"05:00\", timezone = \"Europe/Stockholm\" }}\n"
        ),
    )
    .unwrap();
    let path = rules.to_str().unwrap();

    let out = run(&["check", "--rules", path], None);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    // After the rules, before any warning.
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(lines[2].starts_with("  rule m: "), "{stdout}");
    assert_eq!(
        lines[3],
        "  scale down: instances prod-*, 359559; quiet for 2h, after up 6h, after down 24h; a look every 10m, a step after 1h 30m of passing looks; memory headroom 62.5 %; min plan bunny-1; memory limits hare-1 = 3.2 GiB, rabbit-1 = 8.0 GiB; hours sat,sun 02:00-05:00 Europe/Stockholm"
    );

    let out = run(&["check", "--rules", path, "--format", "json"], None);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let object: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        object["scale_down"],
        serde_json::json!({
            "instances": ["prod-*", "359559"],
            "quiet_for": "2h",
            "after_up": "6h",
            "after_down": "24h",
            "check_every": "10m",
            "window": "1h 30m",
            "memory_headroom": 62.5,
            "min_plan": "bunny-1",
            "memory_limits": {"hare-1": 3_435_973_836_u64, "rabbit-1": 8_589_934_592_u64},
            "hours": {"days": ["sat", "sun"], "from": "02:00", "to": "05:00", "timezone": "Europe/Stockholm"},
        })
    );

    // An empty section: every default, no optional part; a warning still comes last.
    std::fs::write(
        &rules,
        format!(
            "{ladder_and_rule}\n[scale_down]\nhours = {{ from = \"02:00\", to = \"02:30\" }}\n"
        ),
    )
    .unwrap();
    let out = run(&["check", "--rules", path], None);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[3],
        "  scale down: all instances; quiet for 2h, after up 6h, after down 24h; a look every 5m, a step after 1h of passing looks; memory headroom 60 %; hours every day 02:00-02:30 UTC"
    );
    assert!(lines[4].starts_with("warning: "), "{stdout}");
    assert!(
        lines[4].contains("the hours last 30m and window is 1h"),
        "{stdout}"
    );
    let out = run(&["check", "--rules", path, "--format", "json"], None);
    let object: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(object["scale_down"]["instances"], serde_json::json!([]));
    assert_eq!(object["scale_down"]["memory_headroom"], 60.0);
    assert_eq!(object["scale_down"]["min_plan"], serde_json::Value::Null);
    assert_eq!(object["scale_down"]["memory_limits"], serde_json::json!({}));
    assert_eq!(
        object["scale_down"]["hours"]["days"]
            .as_array()
            .unwrap()
            .len(),
        7
    );
    assert_eq!(object["scale_down"]["hours"]["timezone"], "UTC");
    assert_eq!(object["warnings"].as_array().unwrap().len(), 1);

    // Without the section: off, and null.
    std::fs::write(&rules, ladder_and_rule).unwrap();
    let out = run(&["check", "--rules", path], None);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(
        text(&out.stdout)
            .ends_with("  scale down: off (no [scale_down]: plans are never moved down)\n"),
        "{}",
        text(&out.stdout)
    );
    let out = run(&["check", "--rules", path, "--format", "json"], None);
    let object: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(object.get("scale_down").is_some(), "{object}");
    assert_eq!(object["scale_down"], serde_json::Value::Null);
}

#[test]
fn check_reports_every_problem_and_exits_1() {
    let file = "tests/fixtures/rules/invalid/several-problems.toml";
    let out = run(&["check", "--rules", file], None);
    assert_eq!(code(&out), 1);
    let stderr = text(&out.stderr);
    let problems: Vec<&str> = stderr.lines().filter(|l| l.starts_with(file)).collect();
    assert_eq!(problems.len(), 7, "{stderr}");
    assert!(
        problems[0].starts_with(&format!("{file}:10:22: ladder \"single\": ")),
        "{stderr}"
    );
    assert!(
        stderr.contains("7 problems; the file is refused whole"),
        "{stderr}"
    );
}

#[test]
fn check_json_lists_problems_with_positions() {
    let out = run(
        &[
            "check",
            "--rules",
            "tests/fixtures/rules/invalid/unknown-ladder.toml",
            "--format",
            "json",
        ],
        None,
    );
    assert_eq!(code(&out), 1);
    let object: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(object["valid"], false);
    assert_eq!(object["errors"][0]["line"], 8);
    assert_eq!(object["errors"][0]["column"], 11);
    assert_eq!(object["errors"][0]["context"], "rule \"cpu\"");
}

#[test]
fn check_exits_2_on_an_unreadable_file_or_bad_settings() {
    let out = run(&["check", "--rules", "no/such/rules.toml"], None);
    assert_eq!(code(&out), 2);
    assert!(text(&out.stderr).contains("cannot read rules file no/such/rules.toml"));

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[cloudamqp]\npoll_interval = \"whenever\"\n").unwrap();
    let out = run(&["check", "--config", config.to_str().unwrap()], None);
    assert_eq!(code(&out), 2);
    assert!(
        text(&out.stderr).contains("poll_interval"),
        "{}",
        text(&out.stderr)
    );
}

/// A `--config` is read even when `--rules` makes it unnecessary: a typo in it is an
/// error, not silently ignored.
#[test]
fn a_bad_config_is_refused_even_beside_rules() {
    let memory = r#"{"alarm_type":"memory","value":85,"instance_id":359559}"#;
    for (args, stdin) in [
        (vec!["check", "--rules", "rules.toml"], None),
        (
            vec!["explain", "--rules", "rules.toml", "--plan", "bunny-1"],
            Some(memory),
        ),
    ] {
        let mut with_config = vec!["--config", "/nonexistent/settings.toml"];
        with_config.extend(&args);
        let out = run(&with_config, stdin);
        assert_eq!(code(&out), 2, "{args:?}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("/nonexistent/settings.toml"),
            "{}",
            text(&out.stderr)
        );
        assert_eq!(code(&run(&args, stdin)), 0, "{args:?} without it");
    }
}

#[test]
fn check_takes_the_rules_path_from_settings() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        "[rules]\npath = \"tests/fixtures/rules/invalid/empty-ladder.toml\"\n",
    )
    .unwrap();
    let out = run(&["check", "--config", config.to_str().unwrap()], None);
    assert_eq!(code(&out), 1, "{}", text(&out.stderr));
}

#[test]
fn explain_json_prints_exactly_one_change_object() {
    let out = run(
        &[
            "explain",
            "--plan",
            "bunny-1",
            "--alarm",
            "examples/alarms/memory-85.json",
            "--format",
            "json",
        ],
        None,
    );
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.trim().lines().count(), 1);
    let object: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        object,
        serde_json::json!({"decision":"change_plan","direction":"up","from":"bunny-1","to":"hare-1","rule":"memory-high"})
    );
}

#[test]
fn explain_json_skip_has_reason_and_detail_and_exits_0() {
    let out = run(
        &[
            "explain",
            "--plan",
            "bunny-1",
            "--format",
            "json",
            "--last-change",
            "2026-11-26T17:50:00Z",
            "--now",
            "2026-11-26T18:00:00Z",
        ],
        Some(r#"{"alarm_type":"memory","value":85,"instance_id":"359559"}"#),
    );
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let object: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys: Vec<&str> = object
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["decision", "detail", "reason"]);
    assert_eq!(object["decision"], "skip");
    assert_eq!(object["reason"], "cooldown");
    assert!(
        object["detail"]
            .as_str()
            .unwrap()
            .contains("2026-11-26T18:20:00Z")
    );
}

#[test]
fn explain_text_shows_the_decision_and_every_rule_of_the_type() {
    let out = run(
        &[
            "explain",
            "--plan",
            "hare-1",
            "--alarm",
            "examples/alarms/memory-97.json",
        ],
        None,
    );
    assert_eq!(code(&out), 0);
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with(
            "change plan hare-1 -> panda-1 (up, rule \"memory-critical\"; then cooldown 1h)"
        ),
        "{stdout}"
    );
    for rule in [
        "memory-critical",
        "memory-high",
        "cluster-memory-critical",
        "cluster-memory-high",
    ] {
        assert!(
            stdout.contains(&format!("  {rule}: ")),
            "{rule} missing from {stdout}"
        );
    }
}

#[test]
fn explain_selects_by_the_given_instance_and_name() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, "[ladders]\ns = [\"bunny-1\", \"hare-1\"]\n[[rules]]\nname = \"prod\"\nalarm = \"cpu\"\nladder = \"s\"\ninstances = [\"prod-*\"]\n").unwrap();
    let rules = rules.to_str().unwrap();
    let alarm = r#"{"type":"cpu","value":99,"instance_id":1}"#;
    let decide = |extra: &[&str]| {
        let mut args = vec![
            "explain", "--plan", "bunny-1", "--rules", rules, "--format", "json",
        ];
        args.extend_from_slice(extra);
        let out = run(&args, Some(alarm));
        assert_eq!(code(&out), 0, "{}", text(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    assert_eq!(decide(&[])["reason"], "instance_not_selected");
    assert_eq!(
        decide(&["--instance-name", "prod-eu"])["decision"],
        "change_plan"
    );
    assert_eq!(
        decide(&["--instance", "42", "--instance-name", "staging"])["reason"],
        "instance_not_selected"
    );
}

#[test]
fn explain_exits_1_on_an_invalid_alarm_and_2_on_usage() {
    let out = run(&["explain", "--plan", "bunny-1"], Some("[1,2,3]"));
    assert_eq!(code(&out), 1);
    assert!(
        text(&out.stderr).contains("the daemon would answer 400"),
        "{}",
        text(&out.stderr)
    );

    let out = run(
        &["explain", "--alarm", "examples/alarms/memory-85.json"],
        None,
    );
    assert_eq!(code(&out), 2, "missing --plan is a usage error");
    let out = run(
        &["explain", "--plan", "bunny-1", "--now", "yesterday"],
        Some("{}"),
    );
    assert_eq!(code(&out), 2);
    let out = run(
        &["explain", "--plan", "bunny-1", "--alarm", "no/such.json"],
        None,
    );
    assert_eq!(code(&out), 2);
}

#[test]
fn every_command_has_help() {
    for args in [
        &["--help"][..],
        &["check", "--help"],
        &["explain", "--help"],
        &["plans", "--help"],
        &["serve", "--help"],
        &["pause", "--help"],
        &["resume", "--help"],
    ] {
        let out = run(args, None);
        assert_eq!(code(&out), 0, "{args:?}");
        assert!(text(&out.stdout).contains("Usage:"), "{args:?}");
    }
}

#[test]
fn serve_refuses_to_start_live_without_a_key_or_public_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let state = format!(
        "AUTOSCALER__STATE__DIR={}",
        dir.path().join("state").display()
    );
    let run_with = |env: &[&str], args: &[&str]| {
        let mut command = support::command(args);
        command.stdin(std::process::Stdio::null());
        // Defaults first, so the case's own variables win.
        let defaults = [state.as_str(), "AUTOSCALER__SERVER__BIND=127.0.0.1:0"];
        for pair in defaults.into_iter().chain(env.iter().copied()) {
            let (key, value) = pair.split_once('=').unwrap();
            command.env(key, value);
        }
        command.output().unwrap()
    };
    let out = run_with(&[], &["serve", "--live"]);
    assert_eq!(code(&out), 2);
    assert!(
        text(&out.stderr).contains("--live (or live = true) needs the CloudAMQP API key"),
        "{}",
        text(&out.stderr)
    );

    let out = run_with(&["AUTOSCALER__SERVER__BIND=0.0.0.0:0"], &["serve"]);
    assert_eq!(code(&out), 2);
    assert!(
        text(&out.stderr).contains("set server.webhook_token"),
        "{}",
        text(&out.stderr)
    );

    let same = "one-token-for-both-0b5e7a9c41";
    let out = run_with(
        &[
            &format!("AUTOSCALER__SERVER__WEBHOOK_TOKEN={same}"),
            &format!("AUTOSCALER__SERVER__ADMIN_TOKEN={same}"),
        ],
        &["serve"],
    );
    assert_eq!(code(&out), 2);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("give the admin API a token of its own"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(same),
        "the token is never printed: {stderr}"
    );

    let out = run_with(
        &[],
        &[
            "serve",
            "--rules",
            "tests/fixtures/rules/invalid/several-problems.toml",
        ],
    );
    assert_eq!(code(&out), 2);
    assert!(
        text(&out.stderr).contains("7 problems"),
        "{}",
        text(&out.stderr)
    );
}

/// `explain` explains a disk alarm: one size up from `--disk`, the disk rule's own cooldown
/// from `--last-disk-change`, `top_of_ladder` at the largest size.
#[test]
fn explain_a_disk_alarm() {
    let rules = r#"
[[rules]]
name = "disk-low"
alarm = "disk"
below = 15
disk_sizes = [25, 50]
cooldown = "6h"
"#;
    let alarm = Some(r#"{"alarm_type":"disk","value":9,"instance_id":7}"#);
    let json = |args: &[&str]| {
        let mut all = vec!["--plan", "bunny-1", "--format", "json"];
        all.extend_from_slice(args);
        let out = support::explain(rules, &all, alarm);
        assert_eq!(code(&out), 0, "{}", text(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    assert_eq!(
        json(&[]),
        serde_json::json!({"decision": "change_disk", "kind": "disk", "direction": "up",
                           "from": 0, "to": 25, "rule": "disk-low"})
    );
    assert_eq!(json(&["--disk", "25"])["to"], 50);
    let cooling = json(&[
        "--disk",
        "25",
        "--last-disk-change",
        "2026-12-03T08:00:00Z",
        "--now",
        "2026-12-03T10:00:00Z",
    ]);
    assert_eq!(cooling["reason"], "cooldown", "{cooling}");
    // A plan change does not hold the disk rule.
    let free = json(&[
        "--last-change",
        "2026-12-03T09:59:00Z",
        "--now",
        "2026-12-03T10:00:00Z",
    ]);
    assert_eq!(free["decision"], "change_disk", "{free}");
    assert_eq!(json(&["--disk", "50"])["reason"], "top_of_ladder");
    let out = support::explain(rules, &["--plan", "bunny-1"], alarm);
    assert!(
        text(&out.stdout).starts_with("change extra disk 0 -> 25 GB (up, rule \"disk-low\""),
        "{}",
        text(&out.stdout)
    );
}
