//! Throughput in the logs: training TFLOP/s per device always, MFU against the device's peak
//! when one is known (a GPU's data-sheet figure, or `logging.peak_tflops`), consistent with the
//! run's FLOP count and image rate.

mod common;

use common::{quiet, tiny_config};
use flowscale_train::train;

fn perf_records(run: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("perf_images_per_s").is_some())
        .collect()
}

#[test]
fn mfu_is_logged_against_the_configured_peak() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny_config(
        tmp.path(),
        "mfu",
        &["logging.peak_tflops=0.002", "samples.every=0"],
    );
    let state = train(cfg, quiet()).unwrap();
    let records = perf_records(&tmp.path().join("mfu"));
    assert!(!records.is_empty());
    // FLOPs per image of this run, from its own count.
    let per_image = state.train_flops / state.images_seen as f64;
    for r in &records {
        let img_s = r["perf_images_per_s"].as_f64().unwrap();
        let tflops = r["perf_tflops_per_device"].as_f64().unwrap();
        let mfu = r["perf_mfu"].as_f64().unwrap();
        assert!(
            (tflops - img_s * per_image / 1e12).abs() <= 1e-9 * tflops.max(1e-12),
            "{r}"
        );
        assert!((mfu - tflops / 0.002).abs() <= 1e-9 * mfu.max(1e-12), "{r}");
    }
    // Without a peak (CPU, none configured): throughput, no MFU.
    let cfg = tiny_config(tmp.path(), "plain", &["samples.every=0"]);
    train(cfg, quiet()).unwrap();
    let records = perf_records(&tmp.path().join("plain"));
    assert!(records
        .iter()
        .all(|r| r.get("perf_mfu").is_none() && r.get("perf_tflops_per_device").is_some()));
}
