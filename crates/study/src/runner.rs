//! Running a sweep on this machine: one run after another, finished runs skipped, interrupted
//! runs resumed from their newest checkpoint. Also the Slurm array script.

use crate::error::{Result, StudyError};
use crate::sweep::{describe, Sweep};
use flowscale_core::{write_atomic, IoError};
use flowscale_train::checkpoint::CheckpointStore;
use flowscale_train::{train, TrainOptions};
use serde_json::json;
use std::path::{Path, PathBuf};

/// Where a run of the sweep stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    NotStarted,
    /// Stopped at this step (a checkpoint exists, short of `train.steps`).
    Partial(u64),
    Done,
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunStatus::NotStarted => write!(f, "not started"),
            RunStatus::Partial(s) => write!(f, "stopped at step {s}"),
            RunStatus::Done => write!(f, "done"),
        }
    }
}

impl Sweep {
    pub fn run_dir(&self, i: usize) -> PathBuf {
        self.out_dir.join(&self.runs[i].id)
    }

    pub fn status(&self, i: usize) -> Result<RunStatus> {
        let run = &self.runs[i];
        let store = CheckpointStore::new(self.run_dir(i).join("checkpoints"), 1, 0);
        let latest = store.latest().map_err(|e| StudyError::Train {
            id: run.id.clone(),
            source: Box::new(e),
        })?;
        Ok(match latest {
            None => RunStatus::NotStarted,
            Some((step, _)) if step >= run.config.train.steps => RunStatus::Done,
            Some((step, _)) => RunStatus::Partial(step),
        })
    }

    /// Writes `sweep.json` (every run's ID, axis values and status) into the sweep folder.
    pub fn write_index(&self) -> Result<PathBuf> {
        std::fs::create_dir_all(&self.out_dir).map_err(|e| IoError::new(&self.out_dir, e))?;
        let mut runs = Vec::new();
        for (i, r) in self.runs.iter().enumerate() {
            let values: serde_json::Map<String, serde_json::Value> = r
                .values
                .iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect();
            runs.push(json!({
                "id": r.id,
                "dir": self.run_dir(i).display().to_string(),
                "values": values,
                "status": self.status(i)?.to_string(),
            }));
        }
        let mut index = json!({
            "sweep": self.name,
            "file": self.file.display().to_string(),
            "base": self.base.display().to_string(),
            "axes": self.axes,
            "runs": runs,
        });
        // `flowscale report FOLDER` reloads the sweep file from this index and needs the same
        // `--set` overrides to find the same runs.
        if !self.overrides.is_empty() {
            index["set"] = json!(self.overrides);
        }
        let path = self.out_dir.join("sweep.json");
        // Atomic with a per-process temporary: Slurm array tasks may write the index together.
        let text = serde_json::to_string_pretty(&index).unwrap_or_default();
        write_atomic(&path, text.as_bytes())?;
        Ok(path)
    }

    /// Trains run `i` to completion: skipped when done, resumed when partial.
    pub fn run_one(&self, i: usize, options: &TrainOptions) -> Result<RunStatus> {
        let before = self.status(i)?;
        if before == RunStatus::Done {
            return Ok(before);
        }
        let run = &self.runs[i];
        train(
            run.config.clone(),
            TrainOptions {
                resume: matches!(before, RunStatus::Partial(_)),
                ..options.clone()
            },
        )
        .map_err(|e| StudyError::Train {
            id: run.id.clone(),
            source: Box::new(e),
        })?;
        self.status(i)
    }

    /// A Slurm array job with one task per run; each task runs `flowscale sweep FILE [--set
    /// KEY=VALUE]... --run --index $SLURM_ARRAY_TASK_ID` (the overrides the sweep was loaded
    /// with), so finished runs are skipped on resubmission too.
    pub fn slurm_script(&self, flowscale: &Path) -> String {
        let n = self.runs.len();
        let mut runs = String::new();
        for (i, r) in self.runs.iter().enumerate() {
            runs.push_str(&format!("#   {i}: {} ({})\n", r.id, describe(&r.values)));
        }
        format!(
            "#!/usr/bin/env bash\n\
             # Sweep {name}: {n} runs, one Slurm array task each (written by flowscale sweep --slurm).\n\
             {runs}\
             #SBATCH --job-name={name}\n\
             #SBATCH --array=0-{last}\n\
             #SBATCH --ntasks=1\n\
             #SBATCH --gpus-per-task=1\n\
             #SBATCH --cpus-per-task=8\n\
             #SBATCH --output={out}/slurm-%A_%a.out\n\
             set -euo pipefail\n\
             exec {bin} sweep {file}{set} --run --index \"$SLURM_ARRAY_TASK_ID\"\n",
            name = self.name,
            last = n.saturating_sub(1),
            out = self.out_dir.display(),
            bin = flowscale.display(),
            file = self.file.display(),
            set = self
                .overrides
                .iter()
                .map(|o| format!(" --set {}", shell_quote(o)))
                .collect::<String>(),
        )
    }
}

/// `arg` as one word for bash: single-quoted, with each `'` written as `'\''`.
fn shell_quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', r"'\''"))
}

fn toml_to_json(v: &toml::Value) -> serde_json::Value {
    match v {
        toml::Value::String(s) => json!(s),
        toml::Value::Integer(i) => json!(i),
        toml::Value::Float(f) => json!(f),
        toml::Value::Boolean(b) => json!(b),
        other => json!(other.to_string()),
    }
}
