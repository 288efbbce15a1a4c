//! What a run directory holds, and that its TensorBoard files read back in TensorBoard's own
//! loader (scripts/check_tensorboard.py) when the Python package is at hand, else in ours.

mod common;

use common::tiny_config;
use flowscale_train::tensorboard::{read_events, EventValue};
use flowscale_train::{train, TrainOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python_with_tensorboard() -> Option<PathBuf> {
    let py = repo_root().join(".venv/bin/python");
    let ok = Command::new(&py)
        .args(["-c", "import tensorboard"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    ok.then_some(py)
}

/// With `samples.frame = "native"` the grids and their sample events name the frame, so that
/// grids of the two frames never overwrite each other.
#[test]
fn native_frame_grids_are_named_after_the_frame() {
    let tmp = tempfile::tempdir().unwrap();
    train(
        tiny_config(
            tmp.path(),
            "native",
            &["train.steps=1", "samples.frame=\"native\""],
        ),
        TrainOptions {
            quiet: true,
            ..Default::default()
        },
    )
    .unwrap();
    let run = tmp.path().join("native");
    let mut grids: Vec<String> = std::fs::read_dir(run.join("samples"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    grids.sort();
    assert_eq!(grids.len(), 3, "{grids:?}");
    assert!(
        grids.iter().all(|g| g.ends_with("_s2_cfg2_native.png")),
        "{grids:?}"
    );
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let frames: Vec<String> = metrics
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "samples")
        .map(|v| v["frame"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(frames, ["native"; 3]);
}

#[test]
fn run_directory_has_everything_and_tensorboard_reads_it() {
    let tmp = tempfile::tempdir().unwrap();
    let state = train(
        tiny_config(tmp.path(), "out", &[]),
        TrainOptions {
            quiet: true,
            ..Default::default()
        },
    )
    .unwrap();
    let run = tmp.path().join("out");
    assert!(run.join("config.resolved.toml").is_file());
    let ckpts: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        ckpts.contains(&"step-000000003".to_string())
            && ckpts.contains(&"step-000000006".to_string()),
        "{ckpts:?}"
    );
    let last = run.join("checkpoints/step-000000006");
    for f in [
        "model.safetensors",
        "ema-0.9.safetensors",
        "ema-0.99.safetensors",
        "optimizer.safetensors",
        "state.json",
        "config.json",
    ] {
        assert!(last.join(f).is_file(), "missing {f}");
    }
    // Grids: raw + 2 EMAs, one setting, at step 6; each a PNG of 10 rows x 1 column.
    let grids: Vec<PathBuf> = std::fs::read_dir(run.join("samples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(grids.len(), 3, "{grids:?}");
    let png = std::fs::read(&grids[0]).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let (w, h) = (
        u32::from_be_bytes(png[16..20].try_into().unwrap()),
        u32::from_be_bytes(png[20..24].try_into().unwrap()),
    );
    assert_eq!((w, h), (32 + 4, 10 * 34 + 2));

    // metrics.jsonl: one train line per step (logging.every = 1), validations, sample events.
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let train_lines: Vec<&serde_json::Value> =
        lines.iter().filter(|v| v["kind"] == "train").collect();
    assert_eq!(train_lines.len(), 6);
    let loss1 = train_lines[0]["train_loss"].as_f64().unwrap();
    assert!(loss1.is_finite() && loss1 > 0.1, "{loss1}");
    assert!(train_lines[5]["progress_train_flops"].as_f64().unwrap() > 0.0);
    assert_eq!(state.images_seen, 96);

    // TensorBoard: our reader always; TensorBoard's own when installed.
    let tb = run.join("tb");
    let file = std::fs::read_dir(&tb)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let events = read_events(&file).unwrap();
    let losses: Vec<f32> = events
        .iter()
        .filter(|e| e.tag == "train/loss")
        .map(|e| match e.value {
            EventValue::Scalar(v) => v,
            _ => panic!("loss is not a scalar"),
        })
        .collect();
    assert_eq!(losses.len(), 6);
    assert_eq!(losses[0], loss1 as f32);
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e.value, EventValue::Image { .. }))
            .count(),
        3
    );
    match python_with_tensorboard() {
        Some(py) => {
            let out = Command::new(py)
                .arg(repo_root().join("scripts/check_tensorboard.py"))
                .arg(&tb)
                .args([
                    "--expect",
                    "train/loss=6",
                    "--expect",
                    "train/lr=6",
                    "--expect",
                    "train/grad_norm=6",
                    "--expect",
                    "train/loss_t0.00-0.50=6",
                    "--expect",
                    "val/raw/loss=2",
                    "--expect",
                    "val/ema0.99/loss_t1.000=2",
                    "--expect",
                    "samples/raw/s2_cfg2=1",
                    "--scalar",
                    &format!("train/loss@1={}", loss1 as f32),
                ])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success(),
                "TensorBoard's reader rejected the files:\n{text}"
            );
            eprintln!("checked with TensorBoard's EventAccumulator:\n{text}");
        }
        None => {
            eprintln!("tensorboard Python package not found; checked with flowscale's reader only")
        }
    }
}
