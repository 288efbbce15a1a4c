//! `flowscale launch` runs data-parallel ranks with torchrun's environment; a rank that dies
//! makes the survivor fail with a clear error within `run.dist_timeout_s`.

use flowscale_train::config::{load_str, to_toml_string, RunConfig};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The shared tiny run (`tests/fixtures/tiny-run.toml`) with this test's `overrides`, resolved
/// into the config file the command reads.
fn tiny_run_config(overrides: &[&str]) -> String {
    let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    let cfg: RunConfig = load_str(TINY_RUN, Path::new("tiny-run.toml"), &o).unwrap();
    to_toml_string(&cfg).unwrap()
}

const TINY_RUN: &str = include_str!("../../../tests/fixtures/tiny-run.toml");

/// Six steps of two ranks, validated and checkpointed at 3 and 6.
const OVERRIDES: &[&str] = &[
    "run.name=dp",
    "run.seed=3",
    "run.dist_timeout_s=5",
    "train.steps=6",
    "validation.every=3",
    "checkpoint.every=3",
    "logging.every=1",
];

fn write_config(dir: &Path) -> String {
    let path = dir.join("dp.toml");
    std::fs::write(&path, tiny_run_config(OVERRIDES)).unwrap();
    path.display().to_string()
}

#[test]
fn launch_runs_two_ranks_and_rank_zero_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path());
    let out_dir = format!("run.out_dir=\"{}\"", tmp.path().display());
    let out = Command::new(env!("CARGO_BIN_EXE_flowscale"))
        .args(["launch", "--nproc-per-node", "2", "--", "train", &config])
        .args(["--set", &out_dir])
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{log}");
    // One summary (rank 0 only), and a global batch of 2 x 4.
    assert_eq!(log.matches("trained to step 6").count(), 1, "{log}");
    assert!(log.contains("(48 images)"), "{log}");
    let run = tmp.path().join("dp");
    assert_eq!(std::fs::read_dir(run.join("tb")).unwrap().count(), 1);
    assert!(run.join("checkpoints/step-000000006/state.json").is_file());
}

#[test]
fn a_killed_rank_fails_the_other_within_the_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let out_dir = format!("run.out_dir=\"{}\"", tmp.path().display());
    let mut ranks = KillOnDrop(
        (0..2)
            .map(|rank| {
                Command::new(env!("CARGO_BIN_EXE_flowscale"))
                    .args(["train", &config, "--set", &out_dir])
                    .args(["--set", "train.steps=100000", "--set", "validation.every=0"])
                    .args(["--set", "checkpoint.every=100000"])
                    .env("RANK", rank.to_string())
                    .env("WORLD_SIZE", "2")
                    .env("MASTER_ADDR", "127.0.0.1")
                    .env("MASTER_PORT", &port)
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect(),
    );
    // Wait until the ranks are training together (rank 0 has logged steps).
    let metrics = tmp.path().join("dp/metrics.jsonl");
    let start = Instant::now();
    while std::fs::read_to_string(&metrics).map_or(0, |t| t.lines().count()) < 3 {
        for (rank, c) in ranks.0.iter_mut().enumerate() {
            if let Some(status) = c.try_wait().unwrap() {
                panic!("rank {rank} exited early: {status}");
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "ranks never trained"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    ranks.0[1].kill().unwrap();
    let killed_at = Instant::now();
    let survivor = ranks.0.remove(0).wait_with_output().unwrap();
    let waited = killed_at.elapsed();
    let err = String::from_utf8_lossy(&survivor.stderr);
    assert!(!survivor.status.success(), "{err}");
    assert!(err.contains("data parallel"), "{err}");
    // The timeout is 5 s; allow for a loaded machine, but not for a hang.
    assert!(waited < Duration::from_secs(30), "took {waited:?}: {err}");
    eprintln!("survivor stopped {waited:?} after the kill: {}", err.trim());
}

/// Children killed when the test ends, passed or not, so no rank outlives it.
struct KillOnDrop(Vec<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

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

#[test]
fn sigterm_to_launch_checkpoints_every_rank_and_leaves_no_process() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("long.toml");
    std::fs::write(
        &path,
        tiny_run_config(&[
            "run.name=long",
            "run.seed=3",
            "run.dist_timeout_s=20",
            "train.steps=1000000",
            "validation.every=0",
            "samples.every=0",
            "checkpoint.every=1000000",
            "logging.every=1",
        ]),
    )
    .unwrap();
    let out_dir = format!("run.out_dir=\"{}\"", tmp.path().display());
    let launcher = Command::new(env!("CARGO_BIN_EXE_flowscale"))
        .args(["launch", "--nproc-per-node", "2", "--", "train"])
        .arg(&path)
        .args(["--set", &out_dir])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let metrics = tmp.path().join("long/metrics.jsonl");
    let start = Instant::now();
    while std::fs::read_to_string(&metrics).map_or(0, |t| t.lines().count()) < 2 {
        assert!(start.elapsed() < Duration::from_secs(300), "no step logged");
        std::thread::sleep(Duration::from_millis(50));
    }
    let ranks = children_of(launcher.id());
    assert_eq!(ranks.len(), 2, "{ranks:?}");
    let sent = Command::new("kill")
        .args(["-TERM", &launcher.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = launcher.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(start.elapsed() < Duration::from_secs(300), "{log}");
    assert_eq!(out.status.code(), Some(128 + 15), "{log}");
    // Rank 0 says where the common checkpoint went; it is there.
    let step: u64 = log
        .split("interrupted by SIGTERM at step ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no interruption message in:\n{log}"));
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
    let path = tmp.path().join("orphan.toml");
    std::fs::write(
        &path,
        tiny_run_config(&[
            "run.name=orphan",
            "run.dist_timeout_s=20",
            "train.steps=1000000",
            "validation.every=0",
            "samples.every=0",
            "checkpoint.every=1000000",
            "logging.every=1",
        ]),
    )
    .unwrap();
    let out_dir = format!("run.out_dir=\"{}\"", tmp.path().display());
    let mut launcher = Command::new(env!("CARGO_BIN_EXE_flowscale"))
        .args(["launch", "--nproc-per-node", "2", "--", "train"])
        .arg(&path)
        .args(["--set", &out_dir])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let metrics = tmp.path().join("orphan/metrics.jsonl");
    let start = Instant::now();
    while std::fs::read_to_string(&metrics).map_or(0, |t| t.lines().count()) < 2 {
        assert!(start.elapsed() < Duration::from_secs(300), "no step logged");
        std::thread::sleep(Duration::from_millis(50));
    }
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
