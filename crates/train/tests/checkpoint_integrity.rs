//! Checkpoints are checked when they are read: a byte flipped in a tensor file after it was
//! written is found by the checkpoint's checksums, a `state.json` whose step is not its folder's
//! is refused, and `--resume` falls back to the newest intact checkpoint, says so in
//! `metrics.jsonl`, and then ends bit-identical to a run that was never damaged.

mod common;

use common::{differing_tensors, final_checkpoint, quiet, tiny_config};
use flowscale_train::{train, TrainOptions};
use std::path::Path;

/// Flips one byte of tensor data (past the safetensors header), which still parses.
fn flip_a_data_byte(file: &Path) {
    let mut bytes = std::fs::read(file).unwrap();
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let at = 8 + header + 17;
    bytes[at] ^= 0x40;
    std::fs::write(file, bytes).unwrap();
}

const SCHEDULE: &str = "optim.schedule=constant";

fn resume() -> TrainOptions {
    TrainOptions {
        resume: true,
        ..quiet()
    }
}

#[test]
fn resume_skips_a_damaged_newest_checkpoint_and_stays_bit_identical() {
    let tmp = tempfile::tempdir().unwrap();
    // Checkpoints at 3 and 6; then step 6's weights are damaged on disk.
    train(tiny_config(tmp.path(), "hurt", &[SCHEDULE]), quiet()).unwrap();
    let six = tmp.path().join("hurt/checkpoints/step-000000006");
    flip_a_data_byte(&six.join("model.safetensors"));

    let state = train(
        tiny_config(tmp.path(), "hurt", &[SCHEDULE, "train.steps=8"]),
        resume(),
    )
    .unwrap();
    assert_eq!(state.step, 8);
    let metrics = std::fs::read_to_string(tmp.path().join("hurt/metrics.jsonl")).unwrap();
    let record = metrics
        .lines()
        .find(|l| l.contains("\"kind\":\"resume\""))
        .unwrap_or_else(|| panic!("no resume record:\n{metrics}"));
    assert!(
        record.contains("\"step\":3")
            && record.contains("step-000000006")
            && record.contains("model.safetensors")
            && record.contains("damaged since it was written"),
        "{record}"
    );

    // The same 8 steps without the damage.
    train(
        tiny_config(tmp.path(), "whole", &[SCHEDULE, "train.steps=8"]),
        quiet(),
    )
    .unwrap();
    let (a, b) = (
        final_checkpoint(&tmp.path().join("hurt")),
        final_checkpoint(&tmp.path().join("whole")),
    );
    let (differing, compared) = differing_tensors(&a, &b);
    assert!(compared > 10);
    assert!(differing.is_empty(), "{differing:?}");
}

#[test]
fn a_run_without_an_intact_checkpoint_names_every_problem() {
    let tmp = tempfile::tempdir().unwrap();
    train(tiny_config(tmp.path(), "gone", &[]), quiet()).unwrap();
    let ckpts = tmp.path().join("gone/checkpoints");
    flip_a_data_byte(&ckpts.join("step-000000006/ema-0.9.safetensors"));
    // A state that claims another step than its folder (and matching checksums: state.json is
    // not among the checksummed files, it is checked against its folder).
    let state = ckpts.join("step-000000003/state.json");
    let text = std::fs::read_to_string(&state).unwrap();
    std::fs::write(&state, text.replacen("\"step\": 3", "\"step\": 5", 1)).unwrap();

    let err = train(
        tiny_config(tmp.path(), "gone", &["train.steps=8"]),
        resume(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("no intact checkpoint"), "{err}");
    assert!(
        err.contains("ema-0.9.safetensors") && err.contains("damaged since it was written"),
        "{err}"
    );
    assert!(
        err.contains("records step 5, its folder is step 3"),
        "{err}"
    );
}
