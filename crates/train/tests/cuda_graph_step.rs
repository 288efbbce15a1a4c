//! `train.cuda_graph`: the trainer's forward and backward captured as a CUDA graph.
//!
//! On any machine: the step on the graph's static inputs (`TrainOptions::static_step_inputs`,
//! the captured region run eagerly) trains bit-identical weights to the ordinary step, for a
//! class run (gradient accumulation, CFG dropout, clipping, two EMAs, activation checkpointing)
//! and a text run on stored embeddings; what the graph cannot replay is refused by name. With
//! `--features cuda-tests` on a GPU host: a graphed run trains the same weights as an eager one.

#[path = "../../../tests/support/captioned_shards.rs"]
mod captioned_shards;
mod common;

use captioned_shards::{
    text_config, text_run_overrides, write_set, BOTH, CAPTIONS_ONLY, LABELS_ONLY,
};
use common::{differing_tensors, final_checkpoint, quiet, tiny_config};
use flowscale_train::{train, TrainOptions};

fn static_inputs() -> TrainOptions {
    TrainOptions {
        static_step_inputs: true,
        ..quiet()
    }
}

/// Trains `overrides` twice, the ordinary step and on static inputs, and asserts every tensor
/// of the final checkpoints (weights, EMAs, optimiser moments) is bit-identical.
fn same_weights_on_static_inputs(tmp: &std::path::Path, overrides: &[&str]) {
    train(tiny_config(tmp, "ordinary", overrides), quiet()).unwrap();
    let fixed = train(tiny_config(tmp, "static", overrides), static_inputs()).unwrap();
    assert_eq!(fixed.step, 6);
    let a = final_checkpoint(&tmp.join("ordinary"));
    let b = final_checkpoint(&tmp.join("static"));
    let (differing, compared) = differing_tensors(&a, &b);
    assert!(compared > 20, "only {compared} tensors compared");
    assert!(differing.is_empty(), "{differing:?}");
}

/// A depth-2 class run on latent shards with labels (identity autoencoder: 3x8x8 "latents";
/// the GPU host has no Fashion-MNIST), as overrides of the tiny run.
fn latent_class_run(tmp: &std::path::Path) -> Vec<String> {
    let shards = tmp.join("labelled");
    let kind = LABELS_ONLY;
    // No embeddings: the text encoder's config is never read.
    write_set(&shards, kind, &tmp.join("no-text-encoder.toml"));
    vec![
        "data.dataset=latent-shards".into(),
        format!("data.path={:?}", shards.display().to_string()),
        "data.resolution=8".into(),
        "data.shuffle_buffer=16".into(),
        "data.workers=1".into(),
        "model.patch_size=2".into(),
        "model.depth=2".into(),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn the_step_on_static_inputs_trains_the_same_weights() {
    // tiny_config: two micro-batches of 8 per step, CFG dropout 0.3, clipping, two EMAs.
    let tmp = tempfile::tempdir().unwrap();
    let run = latent_class_run(tmp.path());
    same_weights_on_static_inputs(tmp.path(), &strs(&run));
    // The copies are what the region reads: a run on other draws must end elsewhere, or the
    // comparison above could pass with inputs that never change.
    let mut other = run.clone();
    other.push("run.seed=8".into());
    train(
        tiny_config(tmp.path(), "other", &strs(&other)),
        static_inputs(),
    )
    .unwrap();
    let (differing, _) = differing_tensors(
        &final_checkpoint(&tmp.path().join("static")),
        &final_checkpoint(&tmp.path().join("other")),
    );
    assert!(!differing.is_empty());
}

#[test]
fn static_inputs_with_activation_checkpointing_train_the_same_weights() {
    let tmp = tempfile::tempdir().unwrap();
    same_weights_on_static_inputs(
        tmp.path(),
        &[
            "model.depth=3",
            "train.activation_checkpointing=\"every-2\"",
        ],
    );
}

#[test]
fn a_text_run_on_stored_embeddings_trains_the_same_weights_on_static_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let text = text_config(tmp.path());
    let shards = tmp.path().join("both");
    write_set(&shards, BOTH, &text);
    let mut o = text_run_overrides(&shards, &text);
    o.push("conditioning.source_dropout={ minilm = 0.4 }".into());
    let o: Vec<&str> = o.iter().map(String::as_str).collect();
    same_weights_on_static_inputs(tmp.path(), &o);

    // Captions encoded during training cannot be replayed: named, before any step.
    let captions = tmp.path().join("captions-only");
    let kind = CAPTIONS_ONLY;
    write_set(&captions, kind, &text);
    let o = text_run_overrides(&captions, &text);
    let o: Vec<&str> = o.iter().map(String::as_str).collect();
    let e = train(tiny_config(tmp.path(), "otf", &o), static_inputs())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("train.cuda_graph") && e.contains("captions") && e.contains("precompute"),
        "{e}"
    );
}

#[test]
fn what_a_graph_cannot_replay_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let e = train(
        tiny_config(tmp.path(), "cpu", &["train.cuda_graph=true"]),
        quiet(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("train.cuda_graph") && e.contains("CUDA device") && e.contains("Cpu"),
        "{e}"
    );
    let e = train(
        tiny_config(
            tmp.path(),
            "zero2",
            &["train.cuda_graph=true", "train.zero_stage=2"],
        ),
        quiet(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("train.zero_stage = 2"), "{e}");
}

/// A graphed run on the GPU against the same run launched eagerly: the latent class run
/// above (two micro-batches, dropout, clipping, EMAs, 6 steps) on `cuda`.
#[cfg(feature = "cuda-tests")]
#[test]
fn a_graphed_run_trains_the_same_weights_as_an_eager_one() {
    assert!(tch::Cuda::is_available(), "cuda-tests needs a CUDA device");
    let tmp = tempfile::tempdir().unwrap();
    let mut eager = latent_class_run(tmp.path());
    eager.push("run.device=\"cuda\"".into());
    let mut graphed = eager.clone();
    graphed.push("train.cuda_graph=true".into());
    train(tiny_config(tmp.path(), "eager", &strs(&eager)), quiet()).unwrap();
    let state = train(tiny_config(tmp.path(), "graphed", &strs(&graphed)), quiet()).unwrap();
    assert_eq!(state.step, 6);
    let a = final_checkpoint(&tmp.path().join("eager"));
    let b = final_checkpoint(&tmp.path().join("graphed"));
    let mut worst = (0.0f64, String::new());
    for (group, tensors) in &a.groups {
        for (name, t) in tensors {
            let o = &b.groups[group][name];
            let d = (t - o).abs().max().double_value(&[]);
            if d > worst.0 {
                worst = (d, format!("{group}/{name}"));
            }
        }
    }
    println!("largest difference {:.2e} at {}", worst.0, worst.1);
    // A captured and an eager launch may differ by float rounding only; AdamW moves a
    // parameter by at most lr (1e-3) a step, so compare far below it.
    assert!(worst.0 < 1e-5, "{} differs by {:.3e}", worst.1, worst.0);
}
