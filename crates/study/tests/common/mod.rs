//! What the study's integration tests share: a sweep folder around the tiny test run.

use flowscale_train::config::{load_str, to_toml_string, RunConfig};
use std::path::Path;

/// The sweeps' base config: the shared tiny run (`tests/fixtures/tiny-run.toml`) with these
/// tests' changes, resolved into the file the sweep names.
fn base_config() -> String {
    let overrides: Vec<String> = ["run.name=base", "run.seed=5", "checkpoint.keep_last=3"]
        .map(String::from)
        .to_vec();
    let cfg: RunConfig = load_str(TINY_RUN, Path::new("tiny-run.toml"), &overrides).unwrap();
    to_toml_string(&cfg).unwrap()
}

const TINY_RUN: &str = include_str!("../../../../tests/fixtures/tiny-run.toml");

/// Writes the base config and `sweep` (with `OUT` replaced by `<dir>/out`) into `dir`; returns
/// the sweep file's path.
pub fn write(dir: &Path, sweep: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("configs")).unwrap();
    std::fs::write(dir.join("configs/base.toml"), base_config()).unwrap();
    let path = dir.join("experiments.toml");
    std::fs::write(
        &path,
        sweep.replace("OUT", &dir.join("out").display().to_string()),
    )
    .unwrap();
    path
}
