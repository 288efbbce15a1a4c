//! What a sweep file may hold, and the checks that need nothing but the file itself. Loaded
//! with the config dialect, so every problem is reported at once with its dotted key; a key
//! of `[set]` or `[axes]` is itself dotted and appears quoted (`axes."model.depth"`), as
//! `--set` takes it.

use flowscale_core::config::{parse_override, Validate, Validator};
use serde::Deserialize;
use toml::{Table, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SweepFile {
    pub sweep: SweepSection,
    /// Run-config overrides applied to every run.
    #[serde(default)]
    pub set: Table,
    /// Run-config keys and the values they take, one run per combination.
    #[serde(default)]
    pub axes: Table,
    pub eval: Option<EvalSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SweepSection {
    pub name: String,
    /// The base run config, relative to the sweep file.
    pub base: String,
    /// Where the runs go, relative to the working directory.
    pub out_dir: String,
}

/// `[eval]`: evaluate every finished run with `flowscale eval` at its best EMA validation
/// loss checkpoint (the paper's rule).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EvalSection {
    /// Eval config file, relative to the sweep file; empty = every key at its default.
    #[serde(default)]
    pub config: String,
    /// `KEY=VALUE` overrides of the eval config (what `flowscale eval --set` takes).
    #[serde(default)]
    pub set: Vec<String>,
    /// Relative stds of post-hoc EMAs (EDM2) to reconstruct at each run's final step and
    /// evaluate too; the report then ranks every run at its best one. Needs `ema.posthoc` in
    /// every run.
    #[serde(default)]
    pub posthoc_stds: Vec<f64>,
}

/// Run-config keys the sweep itself chooses for every run.
const CHOSEN_BY_THE_SWEEP: [&str; 2] = ["run.name", "run.out_dir"];

/// `section."key"`: the dotted key of an entry whose own key holds dots.
fn entry_key(section: &str, key: &str) -> String {
    format!("{section}.\"{key}\"")
}

impl Validate for SweepSection {
    fn validate(&self, v: &mut Validator) {
        // The name becomes a Slurm job name and appears in file listings.
        let allowed = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
        if self.name.is_empty() || !self.name.chars().all(allowed) {
            v.fail(
                "name",
                format!(
                    "use letters, digits, '-', '_' and '.' only, got {:?}",
                    self.name
                ),
            );
        }
    }
}

impl Validate for EvalSection {
    fn validate(&self, v: &mut Validator) {
        for arg in &self.set {
            if let Err(e) = parse_override(arg) {
                v.fail("set", e.to_string());
            }
        }
        for (i, s) in self.posthoc_stds.iter().enumerate() {
            let key = format!("posthoc_stds[{i}]");
            if let Err(e) = flowscale_train::posthoc::profile::std_to_gamma(*s) {
                v.fail(&key, e.to_string());
            } else if self.posthoc_stds[..i].contains(s) {
                v.fail(&key, format!("{s} is listed twice"));
            }
        }
    }
}

impl Validate for SweepFile {
    fn validate(&self, v: &mut Validator) {
        v.section("sweep", &self.sweep);
        for (key, value) in &self.axes {
            if !matches!(value, Value::Array(values) if !values.is_empty()) {
                v.fail(
                    &entry_key("axes", key),
                    "must be a non-empty array of values",
                );
            }
            if self.set.contains_key(key) {
                v.fail(
                    &entry_key("axes", key),
                    "is also in [set]: a key is either fixed or varied",
                );
            }
        }
        for (section, table) in [("set", &self.set), ("axes", &self.axes)] {
            for key in CHOSEN_BY_THE_SWEEP
                .iter()
                .filter(|k| table.contains_key(**k))
            {
                v.fail(
                    &entry_key(section, key),
                    "is chosen by the sweep (the run ID and sweep.out_dir)",
                );
            }
        }
        if let Some(eval) = &self.eval {
            v.section("eval", eval);
        }
    }
}
