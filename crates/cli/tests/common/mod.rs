//! What the `flowscale` binary tests share: the tiny run as a config file, waiting for a run to
//! log, reading the step an interrupted run stopped at, and running the binary ([`binary`]).
// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use flowscale_train::config::{load_str, to_toml_string, RunConfig};
use std::path::Path;
use std::time::{Duration, Instant};

const TINY_RUN: &str = include_str!("../../../../tests/fixtures/tiny-run.toml");

/// The shared tiny run (`tests/fixtures/tiny-run.toml`) with `overrides` (later wins), resolved
/// into the text of the config file a command reads.
pub fn tiny_run_config<S: AsRef<str>>(overrides: &[S]) -> String {
    let o: Vec<String> = overrides.iter().map(|s| s.as_ref().to_owned()).collect();
    let cfg: RunConfig = load_str(TINY_RUN, Path::new("tiny-run.toml"), &o).unwrap();
    to_toml_string(&cfg).unwrap()
}

/// Waits until `metrics` holds at least `lines` lines (the run is past its set-up and its
/// signal handler is installed); fails the test after five minutes.
pub fn wait_for_logged_lines(metrics: &Path, lines: usize) {
    let start = Instant::now();
    while std::fs::read_to_string(metrics).map_or(0, |t| t.lines().count()) < lines {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "{} logged nothing",
            metrics.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The step of "interrupted by SIGTERM at step N: ..." in `log`.
pub fn interrupted_step(log: &str) -> u64 {
    log.split("interrupted by SIGTERM at step ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no interruption message in:\n{log}"))
}

/// Sends SIGTERM to `pid` (through kill(1), as a user or a scheduler would).
pub fn sigterm(pid: u32) {
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

#[path = "../../../../tests/support/captioned_shards.rs"]
pub mod captioned_shards;

pub mod binary;
