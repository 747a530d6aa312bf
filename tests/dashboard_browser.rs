//! The dashboard in a real browser: headless Chromium (Debian's `chromium`) renders `/` and
//! `/instances/{id}` of the real daemon, after an alarm made a change against the fake
//! CloudAMQP. The screenshots are kept as artefacts in `target/test-artefacts/`
//! (`dashboard.png`, `dashboard-instance.png`, `dashboard-phone.png`).
//!
//! Without Chromium this test fails, saying how to install it (`.ci/run` does).

#[path = "state_query/mod.rs"]
mod state_query;
#[path = "daemon_support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{ID, Spawn, spawn_app};

/// How long one Chromium run may take.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

/// The browser: `$CHROMIUM`, else `chromium` on the PATH.
fn chromium() -> PathBuf {
    let name = std::env::var_os("CHROMIUM").unwrap_or_else(|| "chromium".into());
    let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join(&name))
        .find(|path| path.is_file())
        .or_else(|| Some(PathBuf::from(&name)).filter(|p| p.is_absolute() && p.is_file()));
    found.unwrap_or_else(|| {
        panic!(
            "Chromium is needed for this test and was not found (looked for {name:?} on the \
             PATH, or set CHROMIUM=/path/to/chromium). Install Debian's package: \
             `sudo apt-get install -y chromium` (.ci/run installs it when missing)."
        )
    })
}

/// Runs headless Chromium with `args` on `url`; its stdout.
fn browse(profile: &Path, args: &[&str], url: &str) -> String {
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-extensions",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).unwrap();
        text
    });
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium {args:?} {url}: {status}");
            break;
        }
        if started.elapsed() > BROWSER_TIMEOUT {
            let _ = child.kill();
            panic!("chromium {args:?} {url} did not finish in {BROWSER_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().unwrap()
}

/// Where the screenshots are kept: `target/test-artefacts/`.
fn artefacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is inside the target directory")
        .join("test-artefacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn screenshot(profile: &Path, url: &str, size: &str, name: &str) -> PathBuf {
    let path = artefacts().join(name);
    let _ = std::fs::remove_file(&path);
    browse(
        profile,
        &[
            &format!("--screenshot={}", path.display()),
            &format!("--window-size={size}"),
        ],
        url,
    );
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
        "{name} is not a real screenshot ({} bytes)",
        bytes.len()
    );
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_shows_each_instance_its_plan_and_a_chart_with_marks() {
    let browser = chromium();
    let app = spawn_app(Spawn::default()).await;
    // A change, then a second alarm refused for the cooldown: two marks and lines of history.
    app.change_then_cooldown().await;

    let overview = format!("{}/", app.base);
    let instance = format!("{}/instances/{ID}", app.base);
    let (dom, instance_dom, shots) = tokio::task::spawn_blocking(move || {
        assert!(browser.is_file());
        let profile = tempfile::tempdir().unwrap();
        let dom = browse(profile.path(), &["--dump-dom"], &overview);
        let instance_dom = browse(profile.path(), &["--dump-dom"], &instance);
        let shots = [
            screenshot(profile.path(), &overview, "1100,760", "dashboard.png"),
            screenshot(
                profile.path(),
                &instance,
                "1100,1000",
                "dashboard-instance.png",
            ),
            screenshot(profile.path(), &instance, "390,1400", "dashboard-phone.png"),
        ];
        (dom, instance_dom, shots)
    })
    .await
    .unwrap();

    for (page, dom) in [("/", &dom), ("/instances/{id}", &instance_dom)] {
        assert!(dom.contains(">prod<"), "{page}: the instance's name\n{dom}");
        assert!(dom.contains(&format!("id {ID}")), "{page}: its id");
        assert!(
            dom.contains(r#"class="plan">hare-1<"#),
            "{page}: its plan\n{dom}"
        );
        assert!(dom.contains("2 of 8 on single"), "{page}: its rung");
        assert!(
            dom.contains("<svg") && dom.contains(r#"class="plan-line""#),
            "{page}"
        );
        assert_eq!(
            dom.matches(r#"class="mark alarm""#).count(),
            2,
            "{page}: alarms"
        );
        assert!(
            dom.contains(r#"class="mark change completed""#),
            "{page}: the change"
        );
    }
    assert!(instance_dom.contains("skip (cooldown)"), "{instance_dom}");
    assert!(instance_dom.contains("change up bunny-1 -&gt; hare-1: completed"));
    for shot in shots {
        eprintln!("screenshot: {}", shot.display());
    }
    app.stop().await;
}
