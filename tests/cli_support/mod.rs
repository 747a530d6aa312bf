//! The built binary, as a user runs it: the user's own `AUTOSCALER__*` and `CLOUDAMQP_*`
//! environment removed, so nothing but the test steers it.

#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The binary with `args` (from the crate's root, output piped), not started.
pub fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cloudamqp-autoscaler"));
    command
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, _) in std::env::vars() {
        if key.starts_with("AUTOSCALER__") || key.starts_with("CLOUDAMQP_") {
            command.env_remove(key);
        }
    }
    command
}

/// Runs the binary with `args`, `stdin` written to it.
pub fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = command(args);
    let mut child = command.spawn().unwrap();
    let mut pipe = child.stdin.take().unwrap();
    // A command that fails before reading stdin closes it: a broken pipe is its answer.
    let _ = pipe.write_all(stdin.unwrap_or("").as_bytes());
    drop(pipe);
    child.wait_with_output().unwrap()
}

/// `explain --rules <a file holding rules> args…`, `stdin` written to it.
pub fn explain(rules: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.toml");
    std::fs::write(&path, rules).unwrap();
    let path: &Path = &path;
    let mut all = vec!["explain", "--rules", path.to_str().unwrap()];
    all.extend_from_slice(args);
    run(&all, stdin)
}
