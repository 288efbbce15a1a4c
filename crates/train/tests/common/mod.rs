//! A tiny class-conditional Fashion-MNIST run used by the trainer tests, and the helpers the
//! resume tests share.
// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use flowscale_train::checkpoint::{CheckpointStore, LoadedCheckpoint};
use flowscale_train::config::{load_str, RunConfig};
use flowscale_train::state::TrainState;
use flowscale_train::TrainOptions;
use std::path::Path;

pub fn quiet() -> TrainOptions {
    TrainOptions {
        quiet: true,
        ..Default::default()
    }
}

/// The newest checkpoint of a run directory.
pub fn final_checkpoint(run: &Path) -> LoadedCheckpoint<TrainState> {
    let store = CheckpointStore::new(run.join("checkpoints"), 1, 0);
    let (_, path) = store.latest().unwrap().expect("a checkpoint");
    CheckpointStore::load(&path).unwrap()
}

/// Every tensor of `a` that is missing from `b` or not bit-identical to it, with the largest
/// difference (sorted), and how many tensors were compared.
pub fn differing_tensors(
    a: &LoadedCheckpoint<TrainState>,
    b: &LoadedCheckpoint<TrainState>,
) -> (Vec<String>, usize) {
    let mut compared = 0;
    let mut differing = Vec::new();
    for (group, tensors) in &a.groups {
        for (name, t) in tensors {
            compared += 1;
            match b.groups.get(group).and_then(|g| g.get(name)) {
                None => differing.push(format!("{group}/{name} (missing)")),
                Some(o) if !t.equal(o) => {
                    let diff = (t - o).abs().max().double_value(&[]);
                    differing.push(format!("{group}/{name} (max |diff| {diff:e})"));
                }
                Some(_) => {}
            }
        }
    }
    differing.sort();
    (differing, compared)
}

/// Starts ranks 0 and 1 of the ignored test `test` of this binary with torchrun's environment,
/// a free loopback port, and `FLOWSCALE_TEST_OUT` / `FLOWSCALE_TEST_MODE` for the rank.
pub fn spawn_ranks(test: &str, out: &Path, mode: &str) -> Vec<std::process::Child> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let exe = std::env::current_exe().unwrap();
    (0..2)
        .map(|rank| {
            std::process::Command::new(&exe)
                .args(["--ignored", "--exact", test, "--nocapture"])
                .env("RANK", rank.to_string())
                .env("WORLD_SIZE", "2")
                .env("LOCAL_RANK", rank.to_string())
                .env("LOCAL_WORLD_SIZE", "2")
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", &port)
                .env("FLOWSCALE_TEST_OUT", out)
                .env("FLOWSCALE_TEST_MODE", mode)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect()
}

/// The run a spawned rank of a resume test trains in mode `mode`: `straight` (uninterrupted, run
/// `dp-straight`), `half` (stopped after step 3, run `dp-split`) or `resume` (that run resumed);
/// `None` for another mode.
pub fn resume_test_run(mode: &str) -> Option<(&'static str, TrainOptions)> {
    Some(match mode {
        "straight" => ("dp-straight", quiet()),
        "half" => (
            "dp-split",
            TrainOptions {
                stop_at: Some(3),
                ..quiet()
            },
        ),
        "resume" => (
            "dp-split",
            TrainOptions {
                resume: true,
                ..quiet()
            },
        ),
        _ => return None,
    })
}

/// Waits for every rank; a failed one fails the test with its output.
pub fn wait_ranks(ranks: Vec<std::process::Child>) {
    for (rank, child) in ranks.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "rank {rank} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The shared tiny run (`tests/fixtures/tiny-run.toml`) as the trainer tests use it: six steps
/// that run every hook (two EMAs, gradient accumulation and clipping, CFG dropout, validation,
/// grids, checkpoints), then `overrides` (later wins).
pub fn tiny_config(out_dir: &Path, name: &str, overrides: &[&str]) -> RunConfig {
    let mut o: Vec<String> = vec![
        format!("run.name={name:?}"),
        format!("run.out_dir={:?}", out_dir.display().to_string()),
        "run.seed=7".into(),
        "conditioning.dropout=0.3".into(),
        "optim.lr=1e-3".into(),
        "optim.warmup_steps=2".into(),
        "optim.weight_decay=0.01".into(),
        "optim.grad_clip=1.0".into(),
        "ema.decays=[0.9, 0.99]".into(),
        "ema.every=2".into(),
        "train.steps=6".into(),
        // Two micro-batches of 8 per optimiser step.
        "train.batch_size=16".into(),
        "train.micro_batch_size=8".into(),
        "validation.every=3".into(),
        "validation.samples=12".into(),
        "validation.batch_size=5".into(),
        "samples.every=6".into(),
        "samples.per_class=1".into(),
        "samples.steps=[2]".into(),
        "samples.cfg=[2.0]".into(),
        "checkpoint.every=3".into(),
        "checkpoint.keep_last=5".into(),
        "logging.every=1".into(),
        "logging.t_bins=2".into(),
    ];
    o.extend(overrides.iter().map(|s| s.to_string()));
    load_str(TINY_RUN, Path::new("tests/fixtures/tiny-run.toml"), &o).expect("valid test config")
}

/// The tiny run every crate's tests share.
pub const TINY_RUN: &str = include_str!("../../../../tests/fixtures/tiny-run.toml");
