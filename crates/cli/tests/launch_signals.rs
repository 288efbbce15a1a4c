//! Signals and `flowscale launch`: SIGTERM to the launcher is forwarded to every rank, which
//! stop together after one checkpoint, and no rank outlives the launcher, even one killed with
//! SIGKILL. A binary of its own: its ranks would otherwise compete for the cores with the other
//! launch tests' ranks, whose peer timeout is short.

mod common;

use common::{interrupted_step, sigterm, tiny_run_config, wait_for_logged_lines};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Pids whose parent is `parent` (from /proc).
fn children_of(parent: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    let after = s.rsplit_once(')')?.1.split_whitespace().nth(1)?.to_owned();
                    after.parse::<u32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

/// `flowscale launch` of two ranks on a run that would train for ever (only the end would
/// validate, sample and checkpoint), logging every step, in `out/<name>`; the launcher's output
/// goes to `output`.
fn launch_long_run(out: &Path, name: &str, output: fn() -> Stdio) -> std::process::Child {
    let path = out.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        tiny_run_config(&[
            format!("run.name={name:?}"),
            format!("run.out_dir={:?}", out.display().to_string()),
            "run.seed=3".into(),
            "run.dist_timeout_s=20".into(),
            "train.steps=1000000".into(),
            "validation.every=0".into(),
            "samples.every=0".into(),
            "checkpoint.every=1000000".into(),
            "logging.every=1".into(),
        ]),
    )
    .unwrap();
    Command::new(env!("CARGO_BIN_EXE_flowscale"))
        .args(["launch", "--nproc-per-node", "2", "--", "train"])
        .arg(&path)
        .stdout(output())
        .stderr(output())
        .spawn()
        .unwrap()
}

#[test]
fn sigterm_to_launch_checkpoints_every_rank_and_leaves_no_process() {
    let tmp = tempfile::tempdir().unwrap();
    let launcher = launch_long_run(tmp.path(), "long", Stdio::piped);
    let start = Instant::now();
    wait_for_logged_lines(&tmp.path().join("long/metrics.jsonl"), 2);
    let ranks = children_of(launcher.id());
    assert_eq!(ranks.len(), 2, "{ranks:?}");
    sigterm(launcher.id());
    let out = launcher.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(start.elapsed() < Duration::from_secs(300), "{log}");
    assert_eq!(out.status.code(), Some(128 + 15), "{log}");
    // Rank 0 says where the common checkpoint went; it is there.
    let step = interrupted_step(&log);
    let ck = tmp.path().join(format!("long/checkpoints/step-{step:09}"));
    assert!(ck.join("state.json").is_file(), "{log}");
    // No rank outlives the launcher.
    for pid in ranks {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "rank pid {pid} still exists"
        );
    }
}

#[test]
fn ranks_of_a_killed_launcher_checkpoint_and_exit() {
    let tmp = tempfile::tempdir().unwrap();
    let mut launcher = launch_long_run(tmp.path(), "orphan", Stdio::null);
    let start = Instant::now();
    wait_for_logged_lines(&tmp.path().join("orphan/metrics.jsonl"), 2);
    let ranks = children_of(launcher.id());
    assert_eq!(ranks.len(), 2, "{ranks:?}");
    // SIGKILL cannot be forwarded: the kernel sends each rank SIGTERM instead.
    launcher.kill().unwrap();
    launcher.wait().unwrap();
    let gone = |pid: &u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
    };
    while !ranks.iter().all(gone) {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "ranks {ranks:?} outlived their launcher"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let checkpoints = std::fs::read_dir(tmp.path().join("orphan/checkpoints"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("state.json").is_file())
        .count();
    assert_eq!(checkpoints, 1, "the ranks stopped without their checkpoint");
}
