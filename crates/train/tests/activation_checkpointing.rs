//! `train.activation_checkpointing`: a run that recomputes its blocks in backward trains the same
//! weights as one that keeps every activation (up to float rounding), and the setting may change
//! when a run resumes (it is a memory setting, not part of the experiment).

mod common;

use common::{final_checkpoint, quiet, tiny_config};
use flowscale_train::checkpoint::LoadedCheckpoint;
use flowscale_train::state::TrainState;
use flowscale_train::{train, TrainOptions};

/// The largest `max|a - b|` over every tensor of every group, and where it is.
fn worst_difference(
    a: &LoadedCheckpoint<TrainState>,
    b: &LoadedCheckpoint<TrainState>,
) -> (f64, String, usize) {
    let (mut worst, mut at, mut compared) = (0.0f64, String::new(), 0);
    for (group, tensors) in &b.groups {
        for (name, want) in tensors {
            let got = &a.groups[group][name];
            let err = (got - want).abs().max().double_value(&[]);
            compared += 1;
            if err > worst {
                (worst, at) = (err, format!("{group}/{name}"));
            }
        }
    }
    (worst, at, compared)
}

#[test]
fn checkpointed_runs_train_the_same_weights() {
    let tmp = tempfile::tempdir().unwrap();
    // Three blocks, so every-2 mixes recomputed and kept blocks.
    let depth = "model.depth=3";
    train(tiny_config(tmp.path(), "plain", &[depth]), quiet()).unwrap();
    let plain = final_checkpoint(&tmp.path().join("plain"));
    for plan in ["blocks", "every-2"] {
        let setting = format!("train.activation_checkpointing=\"{plan}\"");
        train(tiny_config(tmp.path(), plan, &[depth, &setting]), quiet()).unwrap();
        let got = final_checkpoint(&tmp.path().join(plan));
        let (err, at, compared) = worst_difference(&got, &plain);
        println!("{plan}: largest difference {err:.2e} at {at} over {compared} tensors");
        assert!(compared > 50, "only {compared} tensors compared");
        // Gradients agree to ~1e-7 relative, but AdamW divides by sqrt(v), so an element whose
        // gradient is rounding noise moves by up to lr either way: compare absolutely, far below
        // one step's size (lr 1e-3), as the data-parallel test does.
        assert!(err < 1e-5, "{plan}: {at} differs by {err:.3e}");
    }
}

#[test]
fn a_run_may_turn_checkpointing_on_when_it_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = tiny_config(tmp.path(), "switch", &[]);
    let half = train(
        plain,
        TrainOptions {
            stop_at: Some(3),
            ..quiet()
        },
    )
    .unwrap();
    assert_eq!(half.step, 3);
    let checkpointed = tiny_config(
        tmp.path(),
        "switch",
        &["train.activation_checkpointing=\"blocks\""],
    );
    let resumed = train(
        checkpointed,
        TrainOptions {
            resume: true,
            ..quiet()
        },
    )
    .unwrap();
    assert_eq!(resumed.step, 6);
}

#[test]
fn an_unknown_plan_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let e = flowscale_train::config::load_str::<flowscale_train::config::RunConfig>(
        common::TINY_RUN,
        std::path::Path::new("tiny-run.toml"),
        &[
            format!("run.out_dir={:?}", tmp.path().display().to_string()),
            "train.activation_checkpointing=\"every-0\"".to_string(),
        ],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("every-0") && e.contains("every-N"), "{e}");
}
