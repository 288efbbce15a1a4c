//! Running the `flowscale` binary from tests: its output as text, success or failure asserted
//! with that text, scratch folders, and the tiny text run trained through it (shared by the
//! tests of `generate` from a run and from its export, which compare against each other).

use super::captioned_shards::{text_config, text_run_overrides, write_set, BOTH};
use super::tiny_run_config;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn flowscale(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowscale"))
        .args(args)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("flowscale runs")
}

pub fn text_of(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn ok(out: &Output) -> String {
    let t = text_of(out);
    assert!(out.status.success(), "{t}");
    t
}

pub fn fails(out: &Output) -> String {
    let t = text_of(out);
    assert!(!out.status.success(), "succeeded:\n{t}");
    t
}

/// A fresh folder `name` of a test binary's `suite` (its own, so binaries never share one).
pub fn scratch(suite: &str, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(suite)
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Trains the fixture's tiny run with `overrides` into `dir` through the binary; returns the run
/// directory.
pub fn train(dir: &Path, overrides: &[String]) -> PathBuf {
    let cfg = dir.join("run.toml");
    std::fs::write(&cfg, tiny_run_config(overrides)).unwrap();
    let out_dir = format!("run.out_dir={:?}", dir.join("runs").display().to_string());
    ok(&flowscale(&[
        "train",
        cfg.to_str().unwrap(),
        "--set",
        &out_dir,
    ]));
    dir.join("runs/tiny")
}

/// Six steps on the captioned shards (stored MiniLM embeddings, the text config written at
/// `dir/minilm.toml` as the run's text encoder), with an EMA of decay 0.9 updated every step.
pub fn train_text_run(dir: &Path) -> PathBuf {
    let text = text_config(dir);
    let shards = dir.join("shards");
    write_set(&shards, BOTH, &text);
    let mut o = text_run_overrides(&shards, &text);
    o.extend(
        [
            "train.steps=6",
            "optim.lr=2e-3",
            "optim.warmup_steps=1",
            "ema.decays=[0.9]",
            "ema.every=1",
        ]
        .map(str::to_owned),
    );
    train(dir, &o)
}
