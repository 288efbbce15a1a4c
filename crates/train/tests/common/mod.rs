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

pub fn tiny_config(out_dir: &Path, name: &str, overrides: &[&str]) -> RunConfig {
    let text = format!(
        r#"
[run]
name = "{name}"
out_dir = "{}"
seed = 7
device = "cpu"
[data]
dataset = "fashion-mnist"
resolution = 32
[model]
depth = 1
patch_size = 8
[conditioning]
context_dim = 16
pooled_dim = 16
dropout = 0.3
[optim]
lr = 1e-3
warmup_steps = 2
weight_decay = 0.01
grad_clip = 1.0
[ema]
decays = [0.9, 0.99]
every = 2
[train]
steps = 6
batch_size = 8
grad_accum = 2
precision = "fp32"
[validation]
every = 3
samples = 12
batch_size = 5
[samples]
every = 6
per_class = 1
steps = [2]
cfg = [2.0]
[checkpoint]
every = 3
keep_last = 5
[logging]
every = 1
t_bins = 2
"#,
        out_dir.display()
    );
    let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    load_str(&text, Path::new("tiny.toml"), &o).expect("valid test config")
}
