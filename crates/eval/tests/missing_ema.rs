//! A checkpoint that lost one of the run's EMA files is refused by name when it is loaded for
//! evaluation, instead of "ema" quietly evaluating fewer weight sets than the run keeps: by the
//! checkpoint's checksums, and by the run config for a checkpoint written without them.

use flowscale_eval::loaded_run::LoadedRun;
use flowscale_train::config::{load_str, RunConfig};
use flowscale_train::export::StepChoice;
use flowscale_train::TrainOptions;
use std::path::Path;

const TINY_RUN: &str = include_str!("../../../tests/fixtures/tiny-run.toml");

#[test]
fn a_missing_ema_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let overrides: Vec<String> = vec![
        format!("run.out_dir={:?}", tmp.path().display().to_string()),
        "ema.decays=[0.9, 0.99]".into(),
        "validation.every=4".into(),
        "checkpoint.every=4".into(),
    ];
    let cfg: RunConfig = load_str(TINY_RUN, Path::new("tiny-run.toml"), &overrides).unwrap();
    flowscale_train::train(
        cfg,
        TrainOptions {
            quiet: true,
            ..Default::default()
        },
    )
    .unwrap();
    let run = tmp.path().join("tiny");
    let ck = run.join("checkpoints/step-000000004");
    std::fs::remove_file(ck.join("ema-0.99.safetensors")).unwrap();
    let load = || match LoadedRun::load(
        &run,
        StepChoice::Latest,
        tch::Device::Cpu,
        &Default::default(),
    ) {
        Ok(_) => panic!("a checkpoint without its EMA 0.99 loaded"),
        Err(e) => e.to_string(),
    };
    let err = load();
    assert!(err.contains("ema-0.99.safetensors"), "{err}");
    std::fs::remove_file(ck.join("checksums.json")).unwrap();
    let err = load();
    assert!(err.contains("no ema-0.99.safetensors"), "{err}");
}
