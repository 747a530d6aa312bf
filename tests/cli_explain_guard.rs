//! The built binary: `explain --now` with freezes and schedules — "what would happen at 16:30
//! on Friday?" — answered by the same pure code as the daemon.

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
memory_limits = { "bunny-1" = "1.6GiB" }

[[freeze]]
days = ["fri"]
from = "16:00"
to = "23:59"
timezone = "Europe/Stockholm"
directions = ["down"]

[[freeze]]
from = "2026-12-24T00:00:00+01:00"
to = "2026-12-27T00:00:00+01:00"

[[schedules]]
name = "business-hours"
instances = ["prod-*"]
timezone = "Europe/Stockholm"
start = "0 8 * * 1-5"
end = "0 18 * * 1-5"
min_plan = "hare-1"
"#;

const ALARM: &str = r#"{"alarm_type":"memory","value":85,"instance_id":359559}"#;

fn run(args: &[&str]) -> Output {
    support::explain(RULES, args, Some(ALARM))
}

fn stdout(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn a_christmas_freeze_turns_the_change_into_a_skip() {
    let json: serde_json::Value = serde_json::from_str(&stdout(&run(&[
        "--plan",
        "bunny-1",
        "--now",
        "2026-12-25T12:00:00+01:00",
        "--format",
        "json",
    ])))
    .unwrap();
    assert_eq!(json["decision"], "skip");
    assert_eq!(json["reason"], "frozen");
    assert!(
        json["detail"]
            .as_str()
            .unwrap()
            .contains("until 2026-12-26T23:00:00Z"),
        "{json}"
    );
}

#[test]
fn friday_afternoon_holds_downs_only_and_the_schedule_is_open() {
    // Friday 2026-12-04 16:30 in Stockholm: the weekly freeze is for downs only.
    let text = stdout(&run(&[
        "--plan",
        "bunny-1",
        "--instance-name",
        "prod-eu",
        "--now",
        "2026-12-04T16:30:00+01:00",
    ]));
    assert!(text.starts_with("change plan bunny-1 -> hare-1"), "{text}");
    assert!(text.contains("freeze in force until"), "{text}");
    assert!(
        text.contains("schedule \"business-hours\" is open")
            && text.contains("it selects this instance"),
        "{text}"
    );
    assert!(text.contains("checked by the running daemon"), "{text}");

    let down = run(&[
        "--down",
        "--plan",
        "hare-1",
        "--floor",
        "bunny-1",
        "--memory-used",
        "100MiB",
        "--now",
        "2026-12-04T16:30:00+01:00",
        "--format",
        "json",
    ]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&down)).unwrap();
    assert_eq!(json["reason"], "frozen", "{json}");
}

#[test]
fn check_lists_the_next_openings_in_the_zone_and_utc_and_warns_about_dst() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.toml");
    let night = "\n[[schedules]]\nname = \"night\"\ntimezone = \"Europe/Stockholm\"\nstart = \"30 2 * * *\"\nduration = \"1h\"\nmin_plan = \"hare-1\"\n";
    std::fs::write(&path, format!("{RULES}{night}")).unwrap();
    let run = |format: &str| {
        let path = path.to_str().unwrap();
        let args = [
            "check",
            "--rules",
            path,
            "--now",
            "2027-03-26T12:00:00Z",
            "--format",
            format,
        ];
        support::run(&args, None)
    };
    let text = stdout(&run("text"));
    assert!(
        text.contains("  freeze: fri 16:00-23:59 Europe/Stockholm (down)"),
        "{text}"
    );
    assert!(
        text.contains("    opens Mon 2027-03-29 08:00 Europe/Stockholm (2027-03-29T06:00:00Z), closes 2027-03-29 18:00"),
        "{text}"
    );
    // The night the clocks go forward, 02:30 does not exist: it opens once, after the gap.
    assert!(
        text.contains("    opens Sun 2027-03-28 03:00 Europe/Stockholm (2027-03-28T01:00:00Z)"),
        "{text}"
    );
    assert!(
        text.contains("warning: schedule \"night\": start \"30 2 * * *\" falls in the DST gap of Europe/Stockholm on 2027-03-28"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&stdout(&run("json"))).unwrap();
    let openings = &json["schedules"][0]["next_openings"];
    assert_eq!(openings.as_array().unwrap().len(), 3);
    assert_eq!(openings[0]["local"], "2027-03-29T08:00:00+02:00");
    assert_eq!(openings[0]["utc"], "2027-03-29T06:00:00Z");
    assert_eq!(json["freezes"].as_array().unwrap().len(), 2);
}

#[test]
fn check_warns_when_a_weekly_freeze_starts_in_a_dst_gap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.toml");
    let freeze = "\n[[freeze]]\ndays = [\"sun\"]\nfrom = \"02:30\"\nto = \"04:00\"\ntimezone = \"Europe/Stockholm\"\n";
    std::fs::write(&path, format!("{RULES}{freeze}")).unwrap();
    let path = path.to_str().unwrap();
    let out = support::run(
        &["check", "--rules", path, "--now", "2027-03-20T12:00:00Z"],
        None,
    );
    let text = stdout(&out);
    assert!(
        text.contains(
            "freeze 3 (sun 02:30-04:00 Europe/Stockholm): from falls in the DST gap of Europe/Stockholm on 2027-03-28 (02:00-03:00 does not exist): it happens once, just after the gap"
        ),
        "{text}"
    );
    assert!(!text.contains("): to falls"), "04:00 exists: {text}");
}
