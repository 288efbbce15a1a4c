//! `[init]`: a run that starts from another run's weights at a higher resolution with QK-norm
//! added (SD3's second stage, the CPU analogue 32 -> 64 px): the key report, the loaded weights,
//! the step-0 validation loss against a fresh start, shape mismatches, and resume.

mod common;

use common::{differing_tensors, final_checkpoint, quiet, tiny_config};
use flowscale_train::checkpoint::CheckpointStore;
use flowscale_train::{train, TrainOptions};
use std::path::Path;

/// The raw validation loss the run logged at `step`.
fn val_loss(run: &Path, step: u64) -> f64 {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["kind"] == "validation" && v["weights"] == "raw" && v["step"] == step)
        .and_then(|v| v["val_loss"].as_f64())
        .unwrap_or_else(|| panic!("{}: no validation at step {step}", run.display()))
}

/// The 64 px child's overrides: QK-norm, the interpolated grid based at the parent's 32 px, and
/// a validation before the first step.
fn child(from: &Path, weights: &str) -> Vec<String> {
    vec![
        "data.resolution=64".into(),
        "model.qk_norm=true".into(),
        "model.position_grid=\"interpolated\"".into(),
        "model.position_base_resolution=32".into(),
        "validation.at_start=true".into(),
        format!("init.from={:?}", from.display().to_string()),
        format!("init.weights={weights:?}"),
    ]
}

fn refs(o: &[String]) -> Vec<&str> {
    o.iter().map(String::as_str).collect()
}

#[test]
fn a_child_starts_from_the_parent_and_resumes_without_reinitialising() {
    let tmp = tempfile::tempdir().unwrap();
    let parent_steps = [
        "train.steps=16",
        "train.batch_size=8",
        "train.micro_batch_size=8",
        "optim.lr=3e-3",
        "validation.every=16",
        "checkpoint.every=16",
        "samples.every=0",
        "logging.every=16",
    ];
    train(tiny_config(tmp.path(), "parent", &parent_steps), quiet()).unwrap();
    let parent_dir = tmp.path().join("parent");
    let parent_loss = val_loss(&parent_dir, 16);

    let mut o = child(&parent_dir, "ema:0.9");
    o.extend(["train.steps=2", "samples.every=0"].map(String::from));
    let child_cfg = tiny_config(tmp.path(), "child", &refs(&o));
    train(
        child_cfg.clone(),
        TrainOptions {
            stop_at: Some(1),
            ..quiet()
        },
    )
    .unwrap();
    let child_dir = tmp.path().join("child");

    // The key report: the added q/k norms are new, the parent's table is dropped (the child
    // uses the interpolated grid), everything else was loaded.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(child_dir.join("init.json")).unwrap())
            .unwrap();
    assert_eq!(report["weights"], "ema:0.9");
    assert_eq!(report["source_step"], 16);
    let new: Vec<&String> = report["new"].as_object().unwrap().keys().collect();
    let norms = ["norm_added_k", "norm_added_q", "norm_k", "norm_q"]
        .map(|n| format!("transformer_blocks.0.attn.{n}.weight"));
    assert_eq!(new, norms.iter().collect::<Vec<_>>());
    let dropped: Vec<&String> = report["dropped"].as_object().unwrap().keys().collect();
    assert_eq!(dropped, ["pos_embed.pos_embed"]);
    assert!(report["regenerated"].as_object().unwrap().is_empty());

    // Every loaded tensor equals the parent's EMA, bit for bit, in the step-0 checkpoint (the
    // first validation is a new best, so step 0 is checkpointed); the norms start at one.
    let step0 = CheckpointStore::load::<flowscale_train::state::TrainState>(
        &CheckpointStore::new(child_dir.join("checkpoints"), 1, 0).path_of(0),
    )
    .unwrap();
    let parent = final_checkpoint(&parent_dir);
    let loaded = report["loaded"].as_array().unwrap();
    assert!(loaded.len() > 20, "{loaded:?}");
    for k in loaded {
        let k = k.as_str().unwrap();
        assert!(
            step0.groups["model"][k].equal(&parent.groups["ema-0.9"][k]),
            "{k} differs from the parent's"
        );
    }
    for n in &norms {
        let t = &step0.groups["model"][n.as_str()];
        assert_eq!(t.min().double_value(&[]), 1.0, "{n}");
        assert_eq!(t.max().double_value(&[]), 1.0, "{n}");
    }

    // Step-0 validation at 64 px: the child is near the parent's loss, a fresh model is not.
    let fresh = tiny_config(
        tmp.path(),
        "fresh",
        &[
            "data.resolution=64",
            "model.qk_norm=true",
            "model.position_grid=\"interpolated\"",
            "model.position_base_resolution=32",
            "validation.at_start=true",
            "train.steps=1",
            "samples.every=0",
        ],
    );
    train(fresh, quiet()).unwrap();
    let child_loss = val_loss(&child_dir, 0);
    let fresh_loss = val_loss(&tmp.path().join("fresh"), 0);
    assert!(
        (child_loss - parent_loss).abs() < 0.3 * (fresh_loss - parent_loss).abs(),
        "parent {parent_loss}, child at step 0 {child_loss}, fresh {fresh_loss}"
    );

    // Resume: the child continues from its own step-1 checkpoint, not from the parent again,
    // and ends where an uninterrupted child ends.
    train(
        child_cfg,
        TrainOptions {
            resume: true,
            ..quiet()
        },
    )
    .unwrap();
    train(tiny_config(tmp.path(), "straight", &refs(&o)), quiet()).unwrap();
    let (differing, compared) = differing_tensors(
        &final_checkpoint(&tmp.path().join("straight")),
        &final_checkpoint(&child_dir),
    );
    assert!(differing.is_empty(), "{differing:?}");
    assert!(compared > 50);

    // [init] is part of the config the checkpoints depend on.
    let other = {
        let mut o = child(&parent_dir, "raw");
        o.extend(["train.steps=3", "samples.every=0"].map(String::from));
        tiny_config(tmp.path(), "child", &refs(&o))
    };
    let err = train(
        other,
        TrainOptions {
            resume: true,
            ..quiet()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("init.weights"), "{err}");

    // A trained tensor of another shape is an error naming it and both shapes.
    let mut o = child(&parent_dir, "raw");
    o.push("model.hidden_size=32".into());
    let err = train(tiny_config(tmp.path(), "wide", &refs(&o)), quiet())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("context_embedder.weight: the source's shape [64, 16], this model's [32, 16]"),
        "{err}"
    );
    // Two EMAs: "ema" alone is ambiguous, as for --weights.
    let o = child(&parent_dir, "ema");
    let err = train(tiny_config(tmp.path(), "ambiguous", &refs(&o)), quiet())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("init.weights") && err.contains("ema:DECAY"),
        "{err}"
    );
}
