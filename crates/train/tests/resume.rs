//! Deterministic resume: N steps in one go equal N/2 steps, a stop, and N/2 more, bit for bit.

mod common;

use common::{differing_tensors, final_checkpoint, quiet, tiny_config};
use flowscale_train::{train, TrainOptions};

#[test]
fn split_run_equals_straight_run_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let straight = train(tiny_config(tmp.path(), "straight", &[]), quiet()).unwrap();
    assert_eq!(straight.step, 6);
    assert_eq!(straight.images_seen, 6 * 8 * 2);

    let cfg = tiny_config(tmp.path(), "split", &[]);
    let half = train(
        cfg.clone(),
        TrainOptions {
            stop_at: Some(3),
            ..quiet()
        },
    )
    .unwrap();
    assert_eq!(half.step, 3);
    let resumed = train(
        cfg,
        TrainOptions {
            resume: true,
            ..quiet()
        },
    )
    .unwrap();
    assert_eq!(resumed.step, 6);
    assert_eq!(resumed.rng_state, straight.rng_state);
    assert_eq!(
        (resumed.data_epoch, resumed.data_index),
        (straight.data_epoch, straight.data_index)
    );

    let a = final_checkpoint(&tmp.path().join("straight"));
    let b = final_checkpoint(&tmp.path().join("split"));
    let mut groups: Vec<&String> = a.groups.keys().collect();
    groups.sort();
    assert_eq!(groups, ["ema-0.9", "ema-0.99", "model", "optimizer"]);
    for (group, tensors) in &a.groups {
        assert_eq!(tensors.len(), b.groups[group].len(), "{group}");
    }
    let (differing, compared) = differing_tensors(&a, &b);
    assert!(
        differing.is_empty(),
        "differ after resume: {}",
        differing.join(", ")
    );
    assert!(compared > 50, "only {compared} tensors compared");
    // The run really trained: the weights moved from their initial values and EMAs differ
    // from the raw weights.
    let w = "proj_out.weight";
    assert!(!a.groups["model"][w].equal(&a.groups["ema-0.99"][w]));
    // The validation losses logged by both runs agree as well.
    let val = |run: &str| -> Vec<String> {
        std::fs::read_to_string(tmp.path().join(run).join("metrics.jsonl"))
            .unwrap()
            .lines()
            .filter(|l| l.contains("\"validation\""))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(val("straight"), val("split"));
    assert_eq!(
        val("straight").len(),
        2 * 3,
        "raw + 2 EMAs at steps 3 and 6"
    );
}

#[test]
fn resume_refuses_an_incompatible_config_and_fresh_runs_refuse_to_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny_config(tmp.path(), "r", &["train.steps=3"]);
    train(cfg.clone(), quiet()).unwrap();
    // Starting again without --resume would overwrite the run.
    let err = train(cfg, quiet()).unwrap_err().to_string();
    assert!(err.contains("--resume"), "{err}");
    // A different learning rate and depth are named; a longer schedule is fine.
    let changed = tiny_config(
        tmp.path(),
        "r",
        &["optim.lr=0.5", "model.depth=2", "train.steps=4"],
    );
    let err = train(
        changed,
        TrainOptions {
            resume: true,
            ..quiet()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("model.depth: 1 -> 2") && err.contains("optim.lr: 0.001 -> 0.5"),
        "{err}"
    );
    assert!(!err.contains("train.steps: "), "{err}");
    let longer = tiny_config(tmp.path(), "r", &["train.steps=4"]);
    let s = train(
        longer,
        TrainOptions {
            resume: true,
            ..quiet()
        },
    )
    .unwrap();
    assert_eq!(s.step, 4);
}
