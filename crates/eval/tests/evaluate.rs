//! `evaluate` end to end on a tiny trained run: rows and provenance, files, the trainer's
//! validation loss reproduced, fixed inputs (a second evaluation gives the same numbers).
//! Needs `.assets/fid-inception/default_1.pt`, `.assets/clip/bpe_simple_vocab_16e6.txt.gz`
//! (scripts/setup) and Fashion-MNIST.

#[path = "common/tiny_clip.rs"]
mod tiny_clip;

use flowscale_eval::config::{EvalConfig, SamplerSpec};
use flowscale_eval::evaluate::{evaluate, EvalRequest};
use flowscale_formulations::SamplerFrame;
use flowscale_train::config::{load_str, RunConfig};
use flowscale_train::export::StepChoice;
use flowscale_train::TrainOptions;
use std::path::{Path, PathBuf};

const TINY_RUN: &str = include_str!("../../../tests/fixtures/tiny-run.toml");

fn tiny_run(out: &Path) -> PathBuf {
    let overrides: Vec<String> = vec![
        format!("run.out_dir={:?}", out.display().to_string()),
        "run.seed=3".into(),
        "ema.decays=[0.9]".into(),
        "ema.every=1".into(),
        "train.batch_size=8".into(),
        "validation.every=4".into(),
        "validation.samples=12".into(),
        "validation.batch_size=5".into(),
        "samples.every=100".into(),
        "checkpoint.every=4".into(),
    ];
    let cfg: RunConfig = load_str(TINY_RUN, Path::new("tiny-run.toml"), &overrides).unwrap();
    flowscale_train::train(
        cfg,
        TrainOptions {
            resume: false,
            progress: Some(false),
            stop_at: None,
            quiet: true,
            ..Default::default()
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
        SamplerSpec {
            steps: 2,
            cfg: 1.0,
            frame: SamplerFrame::Rf,
        },
        SamplerSpec {
            steps: 3,
            cfg: 4.0,
            frame: SamplerFrame::Native,
        },
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
    // A class run on its own held-out split with Inception features: what differs from the
    // paper's protocol is recorded with the numbers.
    let items: Vec<&str> = json["protocol_substitutions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["item"].as_str().unwrap())
        .collect();
    for item in [
        "prompts.source",
        "fid.feature_network",
        "fid.reference",
        "sampling.n",
    ] {
        assert!(items.contains(&item), "{item} not in {items:?}");
    }
    assert_eq!(out.grids.len(), 4);
    assert!(out.grids.iter().all(|g| g.is_file()));
    // The native-frame setting is named so in rows and grids; the default frame is not named.
    let settings: std::collections::BTreeSet<&str> =
        fid.iter().map(|r| r.setting.as_str()).collect();
    assert_eq!(
        settings.into_iter().collect::<Vec<_>>(),
        ["s2_cfg1", "s3_cfg4_native"]
    );
    assert!(out.out_dir.join("samples_raw_s3_cfg4_native.png").is_file());

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

/// With a CLIP model: CLIP score rows (raw and x100) per setting, FID on CLIP image features
/// with the CLIP folder's hash and preprocessing in the provenance columns.
#[test]
fn clip_score_and_clip_fid() {
    tch::set_num_threads(2);
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tiny_run(tmp.path());
    let mut c = EvalConfig::default();
    c.eval.device = "cpu".into();
    c.eval.weights = vec!["raw".into()];
    c.eval.out_dir = tmp.path().join("eval").display().to_string();
    c.validation.enabled = false;
    c.classifier.enabled = false;
    c.sampling.n = 6;
    c.sampling.batch_size = 6;
    c.sampling.settings = vec![SamplerSpec {
        steps: 2,
        cfg: 1.0,
        frame: SamplerFrame::Rf,
    }];
    c.sampling.grid_rows = 1;
    c.sampling.grid_cols = 3;
    c.fid.feature_network = "clip".into();
    c.fid.reference_n = 10;
    c.fid.cache_dir = tmp.path().join("stats").display().to_string();
    c.clip.model = tiny_clip::tiny_clip(tmp.path()).display().to_string();
    c.clip.tokenizer = tiny_clip::bpe().display().to_string();
    let out = evaluate(
        &EvalRequest {
            source: run_dir,
            step: StepChoice::Latest,
            config: c,
        },
        &mut |l| println!("{l}"),
    )
    .unwrap();
    let get = |metric: &str| {
        out.rows
            .iter()
            .find(|r| r.metric == metric)
            .unwrap_or_else(|| panic!("no {metric} row"))
            .clone()
    };
    let raw = get("clip_score");
    let x100 = get("clip_score_x100");
    let fid = get("fid");
    assert!((-1.0..=1.0).contains(&raw.value), "{raw:?}");
    assert!(
        x100.value >= 100.0 * raw.value - 1e-9 && x100.value >= 0.0,
        "{x100:?}"
    );
    assert_eq!(raw.n, 6);
    assert_eq!(raw.setting, "s2_cfg1");
    for r in [&raw, &x100, &fid] {
        assert_eq!(r.feature_network, "clip-image-embeds:tiny-clip");
        assert_eq!(r.feature_weights_sha256.len(), 64);
        assert_eq!(
            r.resize_mode,
            "clip-pil-bicubic32-centercrop32-clip-mean-std"
        );
    }
    assert!(fid.value.is_finite() && fid.value > 0.0, "{fid:?}");
    assert_eq!(fid.reference_stats_sha256.len(), 64);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.out_dir.join("results.json")).unwrap())
            .unwrap();
    assert_eq!(
        json["fid_reference"]["feature_network"],
        "clip-image-embeds:tiny-clip"
    );
    assert_eq!(
        json["clip_model"]["files_sha256"],
        raw.feature_weights_sha256
    );
}
