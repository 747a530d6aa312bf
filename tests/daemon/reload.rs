//! Reloading the rules: a valid file replaces them whole, an invalid one changes nothing.

use std::time::Duration;

use crate::support::{MEMORY_85, Spawn, spawn_app};

const WITHIN: Duration = Duration::from_secs(15);

const TWO_RUNGS: &str = r#"
[ladders]
single = ["bunny-1", "hare-1", "rabbit-1", "panda-1"]
[[rules]]
name = "memory-jump"
alarm = "memory"
above = 80
ladder = "single"
steps = 2
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_file_replaces_the_rules() {
    let app = spawn_app(Spawn {
        live: false,
        ..Spawn::default()
    })
    .await;
    let before = app.status().await["rules"].clone();
    assert!(before["last_reload"].is_null());
    std::fs::write(&app.rules_path, TWO_RUNGS).unwrap();
    let report = app.handle.reload();
    assert!(report.ok, "{report:?}");
    let rules = app.status().await["rules"].clone();
    assert_ne!(rules["hash"], before["hash"]);
    assert_eq!(rules["last_reload"]["ok"], true);
    app.alarm(MEMORY_85).await;
    let instance = app.wait_for_result(WITHIN).await;
    assert_eq!(instance["last_change"]["to"], "rabbit-1");
    assert_eq!(instance["last_change"]["rule"], "memory-jump");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("autoscaler_rules_reload_success 1"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_file_is_refused_whole_and_the_old_rules_stay() {
    let app = spawn_app(Spawn {
        live: false,
        ..Spawn::default()
    })
    .await;
    let hash = app.status().await["rules"]["hash"].clone();
    // Valid TOML, one good rule, one bad one: nothing of it may take effect.
    std::fs::write(
        &app.rules_path,
        format!("{TWO_RUNGS}\n[[rules]]\nname = \"broken\"\nalarm = \"cpu\"\nladder = \"nope\"\n"),
    )
    .unwrap();
    let report = app.handle.reload();
    assert!(!report.ok);
    let status = app.status().await;
    assert_eq!(status["rules"]["hash"], hash);
    let last = &status["rules"]["last_reload"];
    assert_eq!(last["ok"], false);
    let errors: Vec<&str> = last["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let path = app.rules_path.display().to_string();
    assert!(
        errors[0].starts_with(&format!(
            "{path}:14:11: rule \"broken\": unknown ladder \"nope\""
        )),
        "{errors:?}"
    );
    // Twice in a row behaves the same.
    assert!(!app.handle.reload().ok);
    app.alarm(MEMORY_85).await;
    let instance = app.wait_for_result(WITHIN).await;
    assert_eq!(
        instance["last_change"]["to"], "hare-1",
        "the shipped rules still decide"
    );
    assert_eq!(app.get("/readyz").await.status(), 200);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("autoscaler_rules_reload_success 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"autoscaler_rules_reloads_total{result="failure"} 2"#),
        "{metrics}"
    );
    app.stop().await;
}
