//! The built binary: `explain --down`, what one scale-down look decides, as a user asks it.

use std::process::Output;

#[path = "cli_support/mod.rs"]
mod support;

const RULES: &str = r#"
[ladders]
single = ["bunny-1", "hare-1", "rabbit-1"]

[[rules]]
name = "memory-high"
alarm = "memory"
above = 80
ladder = "single"

[scale_down]
quiet_for = "2h"
after_up = "6h"
after_down = "24h"
memory_headroom = 60
memory_limits = { "bunny-1" = "1.6GiB" }
hours = { days = ["sun"], from = "02:00", to = "05:00", timezone = "Europe/Stockholm" }
"#;

fn run(rules: &str, args: &[&str]) -> Output {
    support::explain(rules, args, None)
}

fn json(out: &Output) -> serde_json::Value {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.trim().lines().count(), 1, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// Sunday 2026-10-25 02:30 CET (after the clocks went back at 03:00 CEST): inside the hours.
const NOW: &str = "2026-10-25T01:30:00Z";

/// One look: the defaults below, each overridden by the same flag in `extra`.
fn look(extra: &[&str]) -> serde_json::Value {
    let defaults = [
        ("--plan", "hare-1"),
        ("--floor", "bunny-1"),
        ("--last-up", "2026-10-24T12:00:00Z"),
        ("--last-alarm", "2026-10-24T13:00:00Z"),
        ("--now", NOW),
        ("--format", "json"),
    ];
    let mut args = vec!["--down"];
    for (flag, value) in defaults {
        if !extra.contains(&flag) {
            args.extend([flag, value]);
        }
    }
    args.extend_from_slice(extra);
    json(&run(RULES, &args))
}

#[test]
fn fresh_figures_that_fit_step_down_one_rung() {
    let decision = look(&["--memory-used", "300MiB"]);
    assert_eq!(
        decision,
        serde_json::json!({"decision":"change_plan","direction":"down","from":"hare-1","to":"bunny-1","rule":"scale_down"})
    );
}

#[test]
fn every_gate_answers_with_its_code() {
    let cases: &[(&[&str], &str)] = &[
        (&[], "metrics_unavailable"),
        (&["--memory-used", "1.2GiB"], "headroom"),
        (
            &["--memory-used", "300MiB", "--plan", "bunny-1"],
            "at_floor",
        ),
        (
            &[
                "--memory-used",
                "300MiB",
                "--plan",
                "rabbit-1",
                "--memory-limit",
                "1",
            ],
            "headroom",
        ),
        (
            &["--memory-used", "300MiB", "--plan", "rabbit-1"],
            "capacity_unknown",
        ),
        (
            &[
                "--memory-used",
                "300MiB",
                "--last-alarm",
                "2026-10-25T00:00:00Z",
            ],
            "not_quiet",
        ),
        (
            &[
                "--memory-used",
                "300MiB",
                "--last-up",
                "2026-10-24T22:00:00Z",
            ],
            "too_soon",
        ),
        (
            &[
                "--memory-used",
                "300MiB",
                "--last-down",
                "2026-10-24T12:00:00Z",
            ],
            "too_soon",
        ),
        // Sunday 05:30 CET: the window closed at 05:00.
        (
            &["--memory-used", "300MiB", "--now", "2026-10-25T04:30:00Z"],
            "outside_hours",
        ),
    ];
    for (extra, reason) in cases {
        let decision = look(extra);
        assert_eq!(decision["decision"], "skip", "{extra:?}: {decision}");
        assert_eq!(decision["reason"], *reason, "{extra:?}: {decision}");
        assert!(decision["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
}

/// The night the clocks go back: 02:30 CEST and 02:30 CET are both inside the window, and
/// it closes once, at 05:00 CET.
#[test]
fn the_hours_hold_across_the_clock_change() {
    for now in [
        "2026-10-25T00:30:00Z",
        "2026-10-25T01:30:00Z",
        "2026-10-25T03:59:00Z",
    ] {
        let decision = look(&["--memory-used", "300MiB", "--now", now]);
        assert_eq!(decision["decision"], "change_plan", "{now}: {decision}");
    }
    let decision = look(&["--memory-used", "300MiB", "--now", "2026-10-24T23:59:00Z"]);
    assert_eq!(decision["reason"], "outside_hours", "{decision}");
}

#[test]
fn without_scale_down_it_says_so_and_exits_1() {
    let rules = RULES.split("[scale_down]").next().unwrap();
    let out = run(rules, &["--down", "--plan", "hare-1", "--floor", "bunny-1"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("has no [scale_down]"), "{stderr}");
    // --down needs --floor: a usage error.
    let out = run(RULES, &["--down", "--plan", "hare-1"]);
    assert_eq!(out.status.code(), Some(2));
}
