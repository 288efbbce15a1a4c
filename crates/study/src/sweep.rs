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

use crate::error::{io, Result, StudyError};
use crate::run_id::run_id;
use flowscale_eval::config::EvalConfig;
use flowscale_train::config::{load_str, RunConfig};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use toml::Value;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SweepFile {
    sweep: SweepSection,
    #[serde(default)]
    set: toml::Table,
    #[serde(default)]
    axes: toml::Table,
    eval: Option<EvalSection>,
}

/// `[eval]`: evaluate every finished run with `flowscale eval` at its best EMA validation
/// loss checkpoint (the paper's rule).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EvalSection {
    /// Eval config file, relative to the sweep file; empty = every key at its default.
    #[serde(default)]
    config: String,
    /// `KEY=VALUE` overrides of the eval config (what `flowscale eval --set` takes).
    #[serde(default)]
    set: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SweepSection {
    name: String,
    base: String,
    out_dir: String,
}

/// A sweep, expanded.
#[derive(Debug, Clone)]
pub struct Sweep {
    pub name: String,
    pub file: PathBuf,
    pub base: PathBuf,
    pub out_dir: PathBuf,
    /// Axis keys in file order.
    pub axes: Vec<String>,
    pub runs: Vec<SweepRun>,
    /// The resolved eval config of `[eval]`, when the sweep evaluates its runs.
    pub eval: Option<EvalConfig>,
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

fn bad(path: &Path, message: impl Into<String>) -> StudyError {
    StudyError::Sweep {
        path: path.display().to_string(),
        message: message.into(),
    }
}

impl Sweep {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
        let file: SweepFile =
            toml::from_str(&text).map_err(|e| bad(path, e.to_string().trim_end().to_owned()))?;
        let s = &file.sweep;
        if s.name.is_empty()
            || !s
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(bad(
                path,
                format!(
                    "sweep.name {:?}: use letters, digits, '-', '_', '.'",
                    s.name
                ),
            ));
        }
        let base = path.parent().unwrap_or(Path::new(".")).join(&s.base);
        let base_text = std::fs::read_to_string(&base)
            .map_err(|e| bad(path, format!("sweep.base {}: {e}", base.display())))?;
        let mut axes: Vec<(String, Vec<Value>)> = Vec::new();
        for (key, value) in &file.axes {
            match value {
                Value::Array(values) if !values.is_empty() => {
                    axes.push((key.clone(), values.clone()))
                }
                _ => {
                    return Err(bad(
                        path,
                        format!("axes.\"{key}\" must be a non-empty array of values"),
                    ))
                }
            }
        }
        for key in file.set.keys() {
            if file.axes.contains_key(key) {
                return Err(bad(
                    path,
                    format!("\"{key}\" is both in [set] and in [axes]"),
                ));
            }
        }
        for key in ["run.name", "run.out_dir"] {
            if file.set.contains_key(key) || file.axes.contains_key(key) {
                return Err(bad(
                    path,
                    format!("\"{key}\" is chosen by the sweep (run ID, sweep.out_dir)"),
                ));
            }
        }
        let out_dir = PathBuf::from(&s.out_dir);
        let common: Vec<String> = file.set.iter().map(|(k, v)| override_arg(k, v)).collect();
        let mut runs: Vec<SweepRun> = Vec::new();
        for values in cartesian(&axes) {
            let mut overrides = common.clone();
            overrides.extend(values.iter().map(|(k, v)| override_arg(k, v)));
            let mut config: RunConfig = load_str(&base_text, &base, &overrides)?;
            config.run.out_dir = out_dir.display().to_string();
            let id = run_id(&config)?;
            config.run.name = id.clone();
            if let Some(other) = runs.iter().find(|r| r.id == id) {
                return Err(bad(
                    path,
                    format!(
                        "runs {} and {} resolve to the same config (ID {id}): an axis value repeats or has no effect",
                        describe(&other.values),
                        describe(&values)
                    ),
                ));
            }
            runs.push(SweepRun { id, values, config });
        }
        let eval = match &file.eval {
            None => None,
            Some(e) => {
                let (text, origin) = if e.config.is_empty() {
                    (String::new(), path.to_path_buf())
                } else {
                    let p = path.parent().unwrap_or(Path::new(".")).join(&e.config);
                    let text = std::fs::read_to_string(&p)
                        .map_err(|err| bad(path, format!("eval.config {}: {err}", p.display())))?;
                    (text, p)
                };
                let config: EvalConfig = load_str(&text, &origin, &e.set)?;
                if !config.eval.out_dir.is_empty() {
                    return Err(bad(
                        path,
                        "eval.out_dir is chosen by the sweep (each run's eval/step-N folder)",
                    ));
                }
                Some(config)
            }
        };
        Ok(Self {
            name: s.name.clone(),
            file: path.to_path_buf(),
            base,
            out_dir,
            axes: axes.into_iter().map(|(k, _)| k).collect(),
            runs,
            eval,
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
