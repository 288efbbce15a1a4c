//! `logging.attention_every`: the per-block attention scalars appear in metrics.jsonl and
//! TensorBoard at exactly the scheduled steps, and logging them leaves the training untouched.

mod common;

use common::{differing_tensors, final_checkpoint, quiet, tiny_config};
use flowscale_train::tensorboard::{read_events, EventValue};
use flowscale_train::train;
use std::collections::BTreeSet;
use std::path::Path;

fn metrics(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn attention_scalars_are_logged_on_schedule_without_changing_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let fast = ["samples.every=0"];
    train(tiny_config(tmp.path(), "off", &fast), quiet()).unwrap();
    let on = ["samples.every=0", "logging.attention_every=4"];
    let state = train(tiny_config(tmp.path(), "on", &on), quiet()).unwrap();
    assert_eq!(state.step, 6);

    // Logging the diagnostics draws no random number: the weights, EMAs and optimiser state
    // are bit-identical.
    let (a, b) = (
        final_checkpoint(&tmp.path().join("off")),
        final_checkpoint(&tmp.path().join("on")),
    );
    let (differing, compared) = differing_tensors(&a, &b);
    assert!(differing.is_empty(), "differ: {}", differing.join(", "));
    assert!(compared > 50, "only {compared} tensors compared");
    let depth = a.groups["model"]
        .keys()
        .filter_map(|k| k.strip_prefix("transformer_blocks."))
        .filter_map(|k| k.split('.').next())
        .collect::<BTreeSet<_>>()
        .len();
    assert!(depth >= 1, "{depth}");

    let off = metrics(&tmp.path().join("off"));
    assert!(off.iter().all(|r| r["kind"] != "attention"));
    let records: Vec<serde_json::Value> = metrics(&tmp.path().join("on"))
        .into_iter()
        .filter(|r| r["kind"] == "attention")
        .collect();
    // Every 4 steps of 6: step 4 only (the schedule does not add the last step).
    let steps: Vec<u64> = records
        .iter()
        .map(|r| r["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [4]);
    let record = &records[0];
    for i in 0..depth {
        let max = record[format!("attention_max_logit_block_{i}")].as_f64();
        let entropy = record[format!("attention_entropy_block_{i}")].as_f64();
        let (max, entropy) = (max.unwrap(), entropy.unwrap());
        assert!(max.is_finite(), "{record}");
        assert!(entropy > 0.0 && entropy.is_finite(), "{record}");
    }
    assert_eq!(record.as_object().unwrap().len(), 2 + 2 * depth, "{record}");

    // The same values under the TensorBoard tags, at the same step.
    let tb = tmp.path().join("on").join("tb");
    let file = std::fs::read_dir(&tb)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let events = read_events(&file).unwrap();
    for i in 0..depth {
        for name in ["max_logit", "entropy"] {
            let tag = format!("attention/{name}/block_{i}");
            let found: Vec<(i64, f32)> = events
                .iter()
                .filter(|e| e.tag == tag)
                .map(|e| match e.value {
                    EventValue::Scalar(v) => (e.step, v),
                    _ => panic!("{tag} is not a scalar"),
                })
                .collect();
            let want = record[format!("attention_{name}_block_{i}")]
                .as_f64()
                .unwrap();
            assert_eq!(found, [(4, want as f32)], "{tag}");
        }
    }
}
