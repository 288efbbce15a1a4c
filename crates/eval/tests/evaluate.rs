//! `evaluate` end to end on a tiny trained run: rows and provenance, files, the trainer's
//! validation loss reproduced, fixed inputs (a second evaluation gives the same numbers).
//! Needs `.assets/fid-inception/default_1.pt` (scripts/setup) and Fashion-MNIST.

use flowscale_eval::config::{EvalConfig, SamplerSpec};
use flowscale_eval::evaluate::{evaluate, EvalRequest};
use flowscale_train::config::{load_str, RunConfig};
use flowscale_train::export::StepChoice;
use flowscale_train::TrainOptions;
use std::path::{Path, PathBuf};

fn tiny_run(out: &Path) -> PathBuf {
    let text = format!(
        r#"
[run]
name = "tiny"
out_dir = "{}"
seed = 3
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
[ema]
decays = [0.9]
every = 1
[train]
steps = 4
batch_size = 8
precision = "fp32"
[validation]
every = 4
samples = 12
batch_size = 5
[samples]
every = 100
[checkpoint]
every = 4
[logging]
every = 2
"#,
        out.display()
    );
    let cfg: RunConfig = load_str(&text, Path::new("tiny.toml"), &[]).unwrap();
    flowscale_train::train(
        cfg,
        TrainOptions {
            resume: false,
            progress: Some(false),
            stop_at: None,
            quiet: true,
        },
    )
    .unwrap();
    out.join("tiny")
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn tiny_run_end_to_end() {
    tch::set_num_threads(2);
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tiny_run(tmp.path());
    let mut c = EvalConfig::default();
    c.eval.device = "cpu".into();
    c.eval.out_dir = tmp.path().join("eval").display().to_string();
    c.sampling.n = 8;
    c.sampling.batch_size = 3;
    c.sampling.settings = vec![
        SamplerSpec { steps: 2, cfg: 1.0 },
        SamplerSpec { steps: 3, cfg: 4.0 },
    ];
    c.sampling.grid_rows = 1;
    c.sampling.grid_cols = 5;
    c.fid.weights = root()
        .join(".assets/fid-inception/default_1.pt")
        .display()
        .to_string();
    c.fid.reference_n = 6;
    c.fid.cache_dir = tmp.path().join("stats").display().to_string();
    c.classifier.path = tmp.path().join("cls/c.safetensors").display().to_string();
    c.classifier.train_steps = 20;
    let req = EvalRequest {
        source: run_dir.clone(),
        step: StepChoice::Latest,
        config: c.clone(),
    };
    let out = evaluate(&req, &mut |l| println!("{l}")).unwrap();

    // Rows: per weights (raw, ema0.9): 8 level losses + val_loss; per setting: seconds, FID,
    // class accuracy.
    let weights: Vec<&str> = out.rows.iter().map(|r| r.weights.as_str()).collect();
    assert!(weights.contains(&"raw") && weights.contains(&"ema0.9"));
    assert_eq!(out.rows.len(), 2 * (9 + 2 * 3));
    let fid: Vec<_> = out.rows.iter().filter(|r| r.metric == "fid").collect();
    assert_eq!(fid.len(), 4);
    for r in &fid {
        assert!(r.value.is_finite() && r.value > 0.0, "{r:?}");
        assert_eq!(r.n, 8);
        assert_eq!(r.step, 4);
        assert_eq!(r.formulation, "rf/lognorm(0.00, 1.00)");
        assert_eq!(r.feature_weights_sha256.len(), 64);
        assert_eq!(r.reference_stats_sha256.len(), 64);
        assert!(r.resize_mode.starts_with("bilinear299"));
    }
    let acc = out
        .rows
        .iter()
        .find(|r| r.metric == "class_accuracy")
        .unwrap();
    assert!((0.0..=1.0).contains(&acc.value));

    // The raw validation loss is the trainer's (same protocol, same fixed noise).
    let metrics = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
    let logged = metrics
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["kind"] == "validation" && v["weights"] == "raw" && v["step"] == 4)
        .unwrap()["val_loss"]
        .as_f64()
        .unwrap();
    let ours = out
        .rows
        .iter()
        .find(|r| r.metric == "val_loss" && r.weights == "raw")
        .unwrap()
        .value;
    assert!(
        (ours - logged).abs() <= 1e-6 * logged,
        "{ours} vs trainer {logged}"
    );

    // Files.
    let csv = std::fs::read_to_string(out.out_dir.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), out.rows.len() + 1);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.out_dir.join("results.json")).unwrap())
            .unwrap();
    assert_eq!(json["rows"].as_array().unwrap().len(), out.rows.len());
    assert_eq!(json["fid_reference"]["n_images"], 6);
    assert_eq!(out.grids.len(), 4);
    assert!(out.grids.iter().all(|g| g.is_file()));

    // Fixed inputs: a second evaluation (cached stats and classifier) gives the same numbers.
    c.eval.weights = vec!["ema".into()];
    c.validation.enabled = false;
    let again = evaluate(
        &EvalRequest {
            source: run_dir,
            step: StepChoice::Latest,
            config: c,
        },
        &mut |_| {},
    )
    .unwrap();
    let pick = |rows: &[flowscale_eval::results::ResultRow]| -> Vec<f64> {
        rows.iter()
            .filter(|r| {
                r.weights == "ema0.9" && (r.metric == "fid" || r.metric == "class_accuracy")
            })
            .map(|r| r.value)
            .collect()
    };
    assert_eq!(pick(&again.rows), pick(&out.rows));
}
