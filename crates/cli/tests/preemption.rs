//! SIGTERM (what Slurm and `kill` send) during `flowscale train`: the step in flight finishes, a
//! checkpoint of that step is written, the process exits with 128 + 15 and says where the
//! checkpoint is, and `--resume` from it ends bit-identical to a run that was never interrupted.

mod common;

use common::{interrupted_step, sigterm, tiny_run_config, wait_for_logged_lines};
use std::path::Path;
use std::process::{Command, Stdio};

/// The shared tiny run with `overrides`, resolved into a config file.
fn write_config(path: &Path, overrides: &[String]) {
    std::fs::write(path, tiny_run_config(overrides)).unwrap();
}

fn overrides(out: &Path, name: &str, steps: u64) -> Vec<String> {
    vec![
        format!("run.name={name:?}"),
        format!("run.out_dir={:?}", out.display().to_string()),
        "optim.schedule=\"constant\"".into(),
        "optim.warmup_steps=2".into(),
        format!("train.steps={steps}"),
        // Validation, grids and checkpoints only at the end (or on the signal).
        "validation.every=0".into(),
        "samples.every=0".into(),
        "samples.steps=[2]".into(),
        "samples.per_class=1".into(),
        format!("checkpoint.every={steps}"),
        "logging.every=1".into(),
    ]
}

fn flowscale() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_flowscale"));
    c.env_remove("LD_LIBRARY_PATH");
    c
}

/// `flowscale train CONFIG EXTRA...`, which must succeed.
/// Trains `config` to its end; returns what it wrote to stderr.
fn train_to_the_end(config: &Path, extra: &[&str]) -> String {
    let out = flowscale()
        .arg("train")
        .arg(config)
        .args(extra)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    log
}

#[test]
fn sigterm_checkpoints_the_current_step_and_resume_matches_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("long.toml");
    write_config(&cfg, &overrides(tmp.path(), "long", 1_000_000));
    let child = flowscale()
        .args(["train", cfg.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until a few steps are logged (the handler is installed before the first step).
    wait_for_logged_lines(&tmp.path().join("long/metrics.jsonl"), 3);
    sigterm(child.id());
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(128 + 15), "{log}");
    let step = interrupted_step(&log);
    assert!(step >= 3, "{log}");
    let ck = tmp.path().join(format!("long/checkpoints/step-{step:09}"));
    assert!(ck.join("state.json").is_file(), "{log}");
    assert!(log.contains(&ck.display().to_string()), "{log}");

    // Resume to two steps past the interruption, and train the same run uninterrupted.
    let total = step + 2;
    let resumed = tmp.path().join("resumed.toml");
    write_config(&resumed, &overrides(tmp.path(), "long", total));
    let log = train_to_the_end(&resumed, &["--resume"]);
    // The resume says so, with the step and the checkpoint it continues from.
    let said = format!("resuming from step {step} ({})", ck.display());
    assert!(log.contains(&said), "{log}");
    let whole = tmp.path().join("whole.toml");
    write_config(&whole, &overrides(tmp.path(), "whole", total));
    train_to_the_end(&whole, &[]);
    for file in [
        "model.safetensors",
        "ema-0.99.safetensors",
        "optimizer.safetensors",
    ] {
        let read = |run: &str| {
            let p = tmp
                .path()
                .join(format!("{run}/checkpoints/step-{total:09}/{file}"));
            std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        };
        assert!(
            read("long") == read("whole"),
            "{file} differs after the resume"
        );
    }
}
