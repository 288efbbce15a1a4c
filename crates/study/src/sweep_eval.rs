//! Evaluating a sweep's runs: `flowscale eval` (crates/eval) on each finished run at the
//! checkpoint the paper's rule selects (the lowest validation loss of the first EMA, as the
//! trainer records it), with the sweep's `[eval]` config. Results live in the run's
//! `eval/step-<N>/` folder; an evaluation is redone only when it is missing, when a different
//! checkpoint is now selected, or when the eval config changed (its `results.json` records the
//! resolved config it ran with).

use crate::error::{Result, StudyError};
use crate::runner::RunStatus;
use crate::sweep::Sweep;
use flowscale_core::IoError;
use flowscale_eval::config::EvalConfig;
use flowscale_eval::evaluate::{default_out_dir, evaluate, EvalRequest};
use flowscale_train::checkpoint::CheckpointStore;
use flowscale_train::export::{best_val_loss_step, StepChoice};
use std::path::PathBuf;

/// Where a run's evaluation stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvalStatus {
    /// The sweep has no `[eval]` section.
    NotConfigured,
    /// Training has not finished.
    NotTrained,
    /// To do at this step.
    Pending(u64),
    /// Results exist at this step but with another eval config.
    Stale(u64),
    /// Up to date: the step and its folder.
    Done(u64, PathBuf),
}

impl std::fmt::Display for EvalStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EvalStatus::NotConfigured => write!(f, "no [eval]"),
            EvalStatus::NotTrained => write!(f, "not trained"),
            EvalStatus::Pending(s) => write!(f, "to evaluate at step {s}"),
            EvalStatus::Stale(s) => write!(f, "eval config changed (step {s})"),
            EvalStatus::Done(s, _) => write!(f, "evaluated at step {s}"),
        }
    }
}

/// Where the evaluation in folder `dir` at `step` stands against the eval config `current`
/// (as JSON): pending without `results.json`, stale when that file records another config.
pub(crate) fn results_status(
    dir: PathBuf,
    step: u64,
    current: &serde_json::Value,
) -> Result<EvalStatus> {
    let results = dir.join("results.json");
    if !results.is_file() {
        return Ok(EvalStatus::Pending(step));
    }
    let text = std::fs::read_to_string(&results).map_err(|e| IoError::new(&results, e))?;
    let doc: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| StudyError::invalid(results.display(), e.to_string()))?;
    Ok(if doc["config"] == *current {
        EvalStatus::Done(step, dir)
    } else {
        EvalStatus::Stale(step)
    })
}

impl Sweep {
    /// The step the paper's rule selects for run `i`: the best validation loss recorded in the
    /// newest checkpoint's state (`None` before the first validation).
    pub fn selected_step(&self, i: usize) -> Result<Option<u64>> {
        let store = CheckpointStore::new(self.run_dir(i).join("checkpoints"), 1, 0);
        let latest = store.latest().map_err(|e| StudyError::Train {
            id: self.runs[i].id.clone(),
            source: Box::new(e),
        })?;
        let Some((_, dir)) = latest else {
            return Ok(None);
        };
        best_val_loss_step(&dir).map_err(|e| StudyError::Train {
            id: self.runs[i].id.clone(),
            source: Box::new(e),
        })
    }

    /// Run `i`'s evaluation folder for checkpoint `step` (where `flowscale eval` writes).
    pub fn eval_dir(&self, i: usize, step: u64) -> PathBuf {
        default_out_dir(&self.run_dir(i), step)
    }

    pub fn eval_status(&self, i: usize) -> Result<EvalStatus> {
        let Some(config) = &self.eval else {
            return Ok(EvalStatus::NotConfigured);
        };
        if self.status(i)? != RunStatus::Done {
            return Ok(EvalStatus::NotTrained);
        }
        let Some(step) = self.selected_step(i)? else {
            return Err(StudyError::invalid(
                self.run_dir(i).display(),
                "the finished run has no validation loss, so no checkpoint can be selected \
                 for evaluation (enable [validation])",
            ));
        };
        results_status(self.eval_dir(i, step), step, &self.config_value(config)?)
    }

    /// `config` as the JSON an evaluation records in its `results.json`.
    pub(crate) fn config_value(&self, config: &EvalConfig) -> Result<serde_json::Value> {
        serde_json::to_value(config)
            .map_err(|e| StudyError::invalid(self.file.display(), format!("eval config: {e}")))
    }

    /// Evaluates run `i` unless its results are up to date; returns the results folder.
    pub fn evaluate_run(&self, i: usize, log: &mut dyn FnMut(&str)) -> Result<Option<PathBuf>> {
        match self.eval_status(i)? {
            EvalStatus::NotConfigured | EvalStatus::NotTrained => Ok(None),
            EvalStatus::Done(_, dir) => Ok(Some(dir)),
            EvalStatus::Pending(s) | EvalStatus::Stale(s) => self.evaluate_at(i, s, log).map(Some),
        }
    }

    /// Evaluates run `i` at checkpoint `step` with the sweep's `[eval]` config (the step
    /// [`Sweep::eval_status`] reported as pending or stale); returns the results folder.
    pub fn evaluate_at(&self, i: usize, step: u64, log: &mut dyn FnMut(&str)) -> Result<PathBuf> {
        let Some(config) = self.eval.clone() else {
            return Err(StudyError::invalid(
                self.file.display(),
                "no [eval] section",
            ));
        };
        let outcome = evaluate(
            &EvalRequest {
                source: self.run_dir(i),
                step: StepChoice::Step(step),
                config,
            },
            log,
        )
        .map_err(|e| StudyError::Eval {
            id: self.runs[i].id.clone(),
            source: Box::new(e),
        })?;
        Ok(outcome.out_dir)
    }
}
