//! Sweep files: a base run config, overrides for every run, and axes whose cartesian product
//! is the run grid.
//!
//! ```toml
//! [sweep]
//! name = "formulations-cpu"
//! base = "../configs/demo.toml"          # relative to this file
//! out_dir = "runs/sweeps/formulations-cpu" # relative to the working directory
//! [set]                                   # applied to every run
//! "train.steps" = 300
//! [axes]                                  # one run per combination, first axis slowest
//! "formulation.name" = ["rf/lognorm(0.00, 1.00)", "rf"]
//! "model.depth" = [2, 3]
//! ```
//!
//! Keys are the run config's dotted keys (what `--set` takes); values are TOML values.
//!
//! Sweep files speak the config dialect (`flowscale_core::config`): unknown keys are named,
//! every problem is reported at once with its dotted key, and `--set` overrides any key
//! (`--set sweep.out_dir=elsewhere`, `--set 'set."train.steps"=50'`).

mod file;

use crate::error::{Result, StudyError};
use crate::run_id::run_id;
use file::SweepFile;
use flowscale_core::config::{load, load_str, ConfigError, Validator};
use flowscale_eval::config::EvalConfig;
use flowscale_train::config::RunConfig;
use std::path::{Path, PathBuf};
use toml::Value;

/// A sweep, expanded.
#[derive(Debug, Clone)]
pub struct Sweep {
    pub name: String,
    pub file: PathBuf,
    /// The `--set` overrides the file was loaded with (the Slurm script and `sweep.json`
    /// repeat them, so every reader of the sweep sees the same runs).
    pub overrides: Vec<String>,
    pub base: PathBuf,
    pub out_dir: PathBuf,
    /// Axis keys in file order.
    pub axes: Vec<String>,
    pub runs: Vec<SweepRun>,
    /// The resolved eval config of `[eval]`, when the sweep evaluates its runs.
    pub eval: Option<EvalConfig>,
    /// `[eval] posthoc_stds`: post-hoc EMA lengths each run is also evaluated at.
    pub posthoc_stds: Vec<f64>,
}

/// One run of the grid: its axis values and its resolved config (`run.name` is the run ID,
/// `run.out_dir` the sweep's folder).
#[derive(Debug, Clone)]
pub struct SweepRun {
    pub id: String,
    pub values: Vec<(String, Value)>,
    pub config: RunConfig,
}

/// `--set` syntax for a TOML value.
fn override_arg(key: &str, value: &Value) -> String {
    format!("{key}={value}")
}

/// The text of a file the sweep file names under `key`; a failure is recorded as a problem of
/// that key.
fn read_named(path: &Path, key: &str, v: &mut Validator) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| {
        v.fail(key, format!("cannot read {}: {e}", path.display()));
        String::new()
    })
}

/// Fails with every recorded problem, as a problem of the sweep file.
fn check(path: &Path, v: Validator) -> Result<()> {
    let problems = v.into_problems();
    if problems.is_empty() {
        return Ok(());
    }
    Err(ConfigError::Invalid {
        path: path.to_owned(),
        problems,
    }
    .into())
}

impl Sweep {
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_with(path, &[])
    }

    /// Loads the sweep file with `--set KEY=VALUE` overrides of its own keys.
    pub fn load_with(path: &Path, overrides: &[String]) -> Result<Self> {
        let file: SweepFile = load(path, overrides)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        // The files the sweep names: both reported when both are missing.
        let mut v = Validator::new();
        let base = dir.join(&file.sweep.base);
        let base_text = read_named(&base, "sweep.base", &mut v);
        let eval_source = file.eval.as_ref().map(|e| {
            if e.config.is_empty() {
                (String::new(), path.to_path_buf(), e)
            } else {
                let p = dir.join(&e.config);
                (read_named(&p, "eval.config", &mut v), p, e)
            }
        });
        check(path, v)?;

        let axes: Vec<(String, Vec<Value>)> = file
            .axes
            .iter()
            .filter_map(|(k, val)| Some((k.clone(), val.as_array()?.clone())))
            .collect();
        let out_dir = PathBuf::from(&file.sweep.out_dir);
        let common: Vec<String> = file.set.iter().map(|(k, v)| override_arg(k, v)).collect();
        let mut runs: Vec<SweepRun> = Vec::new();
        let mut v = Validator::new();
        for values in cartesian(&axes) {
            let mut run_overrides = common.clone();
            run_overrides.extend(values.iter().map(|(k, v)| override_arg(k, v)));
            // The shift resolved as the trainer will: an "auto" run's ID is that of its alpha.
            let mut config = load_str::<RunConfig>(&base_text, &base, &run_overrides)?
                .with_resolved_shift()
                .map_err(|e| {
                    StudyError::invalid(base.display(), format!("formulation.shift: {e}"))
                })?;
            config.run.out_dir = out_dir.display().to_string();
            let id = run_id(&config)?;
            config.run.name = id.clone();
            if let Some(other) = runs.iter().find(|r| r.id == id) {
                v.fail(
                    "axes",
                    format!(
                        "runs {} and {} resolve to the same config (ID {id}): an axis value \
                         repeats or has no effect",
                        describe(&other.values),
                        describe(&values)
                    ),
                );
                continue;
            }
            runs.push(SweepRun { id, values, config });
        }
        check(path, v)?;

        let posthoc_stds = file
            .eval
            .as_ref()
            .map_or_else(Vec::new, |e| e.posthoc_stds.clone());
        if !posthoc_stds.is_empty() {
            let mut v = Validator::new();
            for r in runs.iter().filter(|r| r.config.ema.posthoc.is_none()) {
                v.fail(
                    "eval.posthoc_stds",
                    format!(
                        "run {} ({}) keeps no post-hoc EMA snapshots: set \"ema.posthoc\" in \
                         [set] (e.g. {{ stds = [0.05, 0.10], snapshot_every = 100 }})",
                        r.id,
                        describe(&r.values)
                    ),
                );
            }
            check(path, v)?;
        }
        let eval = match eval_source {
            Some((text, origin, e)) => {
                let config: EvalConfig = load_str(&text, &origin, &e.set)?;
                if !config.eval.out_dir.is_empty() {
                    let from_set = e.set.iter().any(|a| a.trim().starts_with("eval.out_dir"));
                    let mut v = Validator::new();
                    v.fail(
                        if from_set { "eval.set" } else { "eval.config" },
                        "eval.out_dir is chosen by the sweep (each run's eval/step-N folder)",
                    );
                    check(path, v)?;
                }
                Some(config)
            }
            None => None,
        };
        Ok(Self {
            name: file.sweep.name,
            file: path.to_path_buf(),
            overrides: overrides.to_vec(),
            base,
            out_dir,
            axes: axes.into_iter().map(|(k, _)| k).collect(),
            runs,
            eval,
            posthoc_stds,
        })
    }
}

/// `key=value, key=value` for messages and listings.
pub fn describe(values: &[(String, Value)]) -> String {
    values
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every combination, the first axis varying slowest.
fn cartesian(axes: &[(String, Vec<Value>)]) -> Vec<Vec<(String, Value)>> {
    let mut out: Vec<Vec<(String, Value)>> = vec![Vec::new()];
    for (key, values) in axes {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                values.iter().map(move |v| {
                    let mut next = prefix.clone();
                    next.push((key.clone(), v.clone()));
                    next
                })
            })
            .collect();
    }
    out
}
