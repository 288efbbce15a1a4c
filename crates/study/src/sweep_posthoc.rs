//! Post-hoc EMA in a sweep (EDM2's power-function EMA, docs/posthoc-ema.md): for every std of
//! `[eval] posthoc_stds`, each finished run's EMA of that length is reconstructed from its
//! snapshots at the run's final step (the newest step with a checkpoint and a snapshot) and
//! evaluated with the sweep's eval config, its weights set to the reconstructed EMA. The
//! results sit in `<run>/eval/posthoc-std-<S>/step-N/`; they are redone only when missing or
//! when the eval config changed. The report picks each run's best std and ranks the runs at
//! it ([`crate::sweep_results`]), so a formulation is not judged at an EMA length that happens
//! to suit another one.

use crate::error::{Result, StudyError};
use crate::runner::RunStatus;
use crate::sweep::Sweep;
use crate::sweep_eval::{results_status, EvalStatus};
use flowscale_eval::config::EvalConfig;
use flowscale_eval::evaluate::{evaluate, reconstructed_eval_dir, EvalRequest};
use flowscale_train::checkpoint::STATE_FILE;
use flowscale_train::export::StepChoice;
use flowscale_train::posthoc::reconstructed::reconstructed_store_dir;
use flowscale_train::posthoc::{default_reconstruction_step, reconstruct_run};
use std::path::PathBuf;

/// The eval weights of a reconstructed checkpoint: its one power-function EMA.
const POSTHOC_WEIGHTS: &str = "phema";

impl Sweep {
    /// The sweep's eval config with the weights set to the reconstructed post-hoc EMA (`None`
    /// without `[eval]`).
    pub fn posthoc_eval_config(&self) -> Option<EvalConfig> {
        let mut c = self.eval.clone()?;
        c.eval.weights = vec![POSTHOC_WEIGHTS.to_owned()];
        Some(c)
    }

    fn train_error(&self, i: usize, e: flowscale_train::TrainError) -> StudyError {
        StudyError::Train {
            id: self.runs[i].id.clone(),
            source: Box::new(e),
        }
    }

    /// Where each post-hoc std of run `i` stands (empty without `posthoc_stds`).
    pub fn posthoc_status(&self, i: usize) -> Result<Vec<(f64, EvalStatus)>> {
        let Some(config) = self.posthoc_eval_config() else {
            return Ok(Vec::new());
        };
        if self.posthoc_stds.is_empty() {
            return Ok(Vec::new());
        }
        if self.status(i)? != RunStatus::Done {
            return Ok(self
                .posthoc_stds
                .iter()
                .map(|s| (*s, EvalStatus::NotTrained))
                .collect());
        }
        let run_dir = self.run_dir(i);
        let step = default_reconstruction_step(&run_dir).map_err(|e| self.train_error(i, e))?;
        let current = self.config_value(&config)?;
        self.posthoc_stds
            .iter()
            .map(|&std| {
                let dir = reconstructed_eval_dir(&run_dir, std, step);
                Ok((std, results_status(dir, step, &current)?))
            })
            .collect()
    }

    /// Reconstructs and evaluates every post-hoc std of run `i` whose results are missing or
    /// stale; returns each std's results folder (nothing before the run is trained).
    pub fn evaluate_posthoc(
        &self,
        i: usize,
        log: &mut dyn FnMut(&str),
    ) -> Result<Vec<(f64, PathBuf)>> {
        let Some(config) = self.posthoc_eval_config() else {
            return Ok(Vec::new());
        };
        let run_dir = self.run_dir(i);
        let mut out = Vec::new();
        for (std, status) in self.posthoc_status(i)? {
            let step = match status {
                EvalStatus::Done(_, dir) => {
                    out.push((std, dir));
                    continue;
                }
                EvalStatus::Pending(s) | EvalStatus::Stale(s) => s,
                EvalStatus::NotConfigured | EvalStatus::NotTrained => continue,
            };
            let checkpoint = reconstructed_store_dir(&run_dir, std).join(format!("step-{step:09}"));
            if !checkpoint.join(STATE_FILE).is_file() {
                let written = reconstruct_run(&run_dir, &[std], Some(step))
                    .map_err(|e| self.train_error(i, e))?;
                if let Some(w) = written.first() {
                    log(&format!(
                        "post-hoc EMA std {std} at step {step}: {} snapshots, relative residual \
                         {:.2e}",
                        w.reconstruction.sources.len(),
                        w.reconstruction.fit.relative_residual
                    ));
                }
            }
            let outcome = evaluate(
                &EvalRequest {
                    source: checkpoint,
                    step: StepChoice::Latest,
                    config: config.clone(),
                },
                log,
            )
            .map_err(|e| StudyError::Eval {
                id: self.runs[i].id.clone(),
                source: Box::new(e),
            })?;
            out.push((std, outcome.out_dir));
        }
        Ok(out)
    }
}
