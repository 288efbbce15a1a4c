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
