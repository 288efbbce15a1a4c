//! `flowscale launch` runs data-parallel ranks with torchrun's environment; a rank that dies
//! makes the survivor fail with a clear error within `run.dist_timeout_s`.

mod common;

use common::tiny_run_config;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
        // A run that succeeds: a generous timeout, so a loaded machine (rank 0 writing the final
        // checkpoint while rank 1 waits in a collective) cannot fail it.
        .args(["--set", "run.dist_timeout_s=120"])
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{log}");
    // Every line the ranks wrote comes out whole, prefixed with its rank; the progress lines
    // (stderr is a pipe, not a terminal) are rank 0's.
    assert!(
        log.lines()
            .all(|l| l.starts_with("[rank 0] ") || l.starts_with("[rank 1] ")),
        "{log}"
    );
    let progress = log
        .lines()
        .filter(|l| l.contains(" | "))
        .collect::<Vec<_>>();
    assert!(
        progress
            .iter()
            .any(|l| l.starts_with("[rank 0] step 6/6 | ")),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.starts_with("[rank 0] ") && l.contains("trained to step 6")),
        "{log}"
    );
    // One summary (rank 0 only); train.batch_size = 4 is the global batch, 2 per rank.
    assert_eq!(log.matches("trained to step 6").count(), 1, "{log}");
    assert!(log.contains("(24 images)"), "{log}");
    assert!(
        log.contains("[rank 0] global batch 4 = 2 rank(s) x 1 micro-batch(es) x 2"),
        "{log}"
    );
    let run = tmp.path().join("dp");
    assert_eq!(std::fs::read_dir(run.join("tb")).unwrap().count(), 1);
    assert!(run.join("checkpoints/step-000000006/state.json").is_file());
}

/// The ranks' errors come out one line each with their rank, then the launcher's own.
#[test]
fn rank_errors_are_named_by_rank_and_not_interleaved() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_flowscale"))
        .args(["launch", "--nproc-per-node", "2", "--", "train"])
        .arg(&missing)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    let rank_errors: Vec<&str> = err.lines().filter(|l| l.starts_with("[rank")).collect();
    assert!(!rank_errors.is_empty(), "{err}");
    for line in &rank_errors {
        let rank = ["[rank 0] error: ", "[rank 1] error: "]
            .iter()
            .any(|p| line.starts_with(p));
        assert!(rank && line.contains("missing.toml"), "{err}");
    }
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.contains("failed") && last.contains("stopped the other ranks"),
        "{err}"
    );
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
