//! A non-finite loss stops the run with a diagnostic (default) or skips the step (configured).
//! A learning rate of 1e30 sends the weights to ~1e30 after one step, so the next forward pass
//! overflows float32.

mod common;

use common::{quiet, tiny_config};
use flowscale_train::train;

const DIVERGING: [&str; 3] = [
    "optim.lr=1e30",
    "optim.warmup_steps=0",
    "validation.every=0",
];

#[test]
fn stop_policy_saves_a_diagnostic_and_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny_config(tmp.path(), "stop", &DIVERGING);
    let err = train(cfg, quiet()).unwrap_err().to_string();
    assert!(err.contains("not finite"), "{err}");
    let run = tmp.path().join("stop");
    let diag: Vec<_> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("nonfinite-step-"))
        .collect();
    assert_eq!(diag.len(), 1, "{diag:?}");
    assert!(err.contains(&diag[0]), "{err}");
    let text = std::fs::read_to_string(run.join(&diag[0])).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(json["nonfinite_steps_since_last_log"].as_u64().unwrap() >= 1);
    assert_eq!(json["lr"].as_f64().unwrap(), 1e30);
}

#[test]
fn skip_policy_finishes_and_counts_skipped_steps() {
    let tmp = tempfile::tempdir().unwrap();
    let mut overrides = DIVERGING.to_vec();
    overrides.push("logging.nonfinite=\"skip\"");
    let cfg = tiny_config(tmp.path(), "skip", &overrides);
    let state = train(cfg, quiet()).unwrap();
    assert_eq!(state.step, 6);
    // Step 1 is finite (it produces the huge weights); every later step overflows and is
    // skipped, leaving the weights as they were.
    assert_eq!(state.skipped_steps, 5);
    let metrics = std::fs::read_to_string(tmp.path().join("skip").join("metrics.jsonl")).unwrap();
    assert!(metrics.contains("train_skipped_steps"), "{metrics}");
    // The final grids would be all NaN: none is written, the run still finishes (its last
    // checkpoint written before the grids).
    let grids: Vec<_> = std::fs::read_dir(tmp.path().join("skip/samples"))
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(grids.is_empty(), "{grids:?}");
    assert!(tmp
        .path()
        .join("skip/checkpoints/step-000000006/state.json")
        .is_file());
}
