//! The checkpoint that selection picks (the lowest validation loss of the first EMA, the
//! paper's rule) exists on disk even when validation runs off the checkpoint schedule: a new
//! best is checkpointed when it is found, and retention keeps it. Before, a run validating every
//! 2 steps and checkpointing every 100 recorded a best step with no checkpoint, and
//! `export --best-val-loss` failed.

mod common;

use common::{quiet, tiny_config};
use flowscale_train::train;

#[test]
fn every_new_best_validation_loss_has_its_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny_config(
        tmp.path(),
        "best",
        &[
            "validation.every=2",
            "checkpoint.every=100",
            "checkpoint.keep_last=100",
            "samples.every=0",
        ],
    );
    let state = train(cfg, quiet()).unwrap();
    let run = tmp.path().join("best");
    // The first EMA's validation losses, in step order: each new minimum is a selected step.
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let mut best = f64::INFINITY;
    let mut new_bests = Vec::new();
    for v in metrics
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["kind"] == "validation" && v["weights"] == "ema0.9")
    {
        let loss = v["val_loss"].as_f64().unwrap();
        if loss < best {
            best = loss;
            new_bests.push(v["step"].as_u64().unwrap());
        }
    }
    assert_eq!(new_bests[0], 2, "the first validation is always a new best");
    let (_, best_step) = state.best_val_loss.expect("validated");
    assert_eq!(Some(&best_step), new_bests.last());
    let checkpoints: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("step-"))
        .collect();
    // Retention keeps everything here, so every step that was the best when it was validated
    // (step 2 at least, off the schedule of 100) has its checkpoint.
    for step in &new_bests {
        let dir = format!("step-{step:09}");
        assert!(checkpoints.contains(&dir), "{dir} missing: {checkpoints:?}");
        let state = run.join("checkpoints").join(&dir).join("state.json");
        assert!(state.is_file(), "{checkpoints:?}");
    }
}
