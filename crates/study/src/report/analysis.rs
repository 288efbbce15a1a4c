//! Gathering a [`Report`] from a sweep: every run's curves and size, the scaling analysis of
//! each formulation ([`super::scaling`]) and the evaluation results.

use super::{scaling, Report};
use crate::curves::{selection_weights_among, RunCurves};
use crate::error::{Result, StudyError};
use crate::sweep::{describe, Sweep};
use crate::sweep_results::{collect, SweepResults};
use flowscale_core::IoError;
use flowscale_train::checkpoint::CheckpointStore;
use std::path::Path;

/// One run's row of the report.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub id: String,
    pub values: String,
    pub status: String,
    pub formulation: String,
    /// `model.backbone` of the run (`mmdit` unless set).
    pub backbone: String,
    pub best: Option<(u64, f64)>,
    pub last: Option<(u64, f64)>,
    pub flops_per_step: Option<f64>,
    /// Trainable parameters of the backbone, from the checkpoint's model config.
    pub params: Option<f64>,
    pub curves: RunCurves,
}

impl RunSummary {
    /// The checkpoint-selection weights' validation points after step 0: what the scaling fits
    /// and the frontier use.
    pub(crate) fn fit_points(&self) -> Option<impl Iterator<Item = (u64, f64)> + '_> {
        let w = self.curves.selection_weights()?;
        Some(
            self.curves.validation[w]
                .iter()
                .copied()
                .filter(|&(s, _)| s > 0),
        )
    }
}

/// Trainable parameters of a run's backbone, counted from the model's own layout for the
/// `config.json` of its newest checkpoint; `None` before the first checkpoint.
fn run_params(dir: &Path) -> Result<Option<f64>> {
    let store = CheckpointStore::new(dir.join("checkpoints"), 1, 0);
    let Ok(Some((_, ck))) = store.latest() else {
        return Ok(None);
    };
    let path = ck.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| IoError::new(&path, e))?;
    let bad = |source| StudyError::Model {
        path: path.clone(),
        source,
    };
    let cfg = flowscale_models::MmditConfig::from_json(&text).map_err(bad)?;
    Ok(Some(
        flowscale_models::param_count(&cfg).map_err(bad)?.trainable as f64,
    ))
}

pub fn summarise(sweep: &Sweep) -> Result<Vec<RunSummary>> {
    let mut out = Vec::new();
    for (i, r) in sweep.runs.iter().enumerate() {
        let dir = sweep.run_dir(i);
        let curves = if dir.join("metrics.jsonl").is_file() {
            RunCurves::read(&dir)?
        } else {
            RunCurves::default()
        };
        let last = curves
            .selection_weights()
            .and_then(|w| curves.validation[w].last().copied());
        out.push(RunSummary {
            id: r.id.clone(),
            values: describe(&r.values),
            status: sweep.status(i)?.to_string(),
            formulation: r.config.formulation.name.clone(),
            backbone: r.config.model.backbone.name().to_owned(),
            best: curves.best(),
            last,
            flops_per_step: curves.flops_per_step,
            params: run_params(&dir)?,
            curves,
        });
    }
    Ok(out)
}

/// The weights checkpoint selection uses among those the results hold.
fn metric_weights(results: &SweepResults) -> Option<String> {
    let mut names: Vec<&str> = results
        .correlations
        .iter()
        .map(|c| c.weights.as_str())
        .collect();
    names.sort();
    names.dedup();
    selection_weights_among(names.into_iter()).map(str::to_owned)
}

/// Gathers the report of `sweep`, to be written into `dir` (nothing is written here).
pub(super) fn analyse(sweep: &Sweep, dir: &Path) -> Result<Report> {
    let runs = summarise(sweep)?;
    let backbones = distinct(runs.iter().map(|r| r.backbone.clone()));
    // A scaling law is fitted over runs of one architecture: across backbones it would mix
    // architectures' curves into one law (the architecture comparison is its own section).
    let scaling = if backbones.len() > 1 {
        Vec::new()
    } else {
        scaling::per_formulation(&runs)
    };
    let formulations = distinct(runs.iter().map(|r| r.formulation.clone()));
    let results = collect(sweep)?;
    let metric_weights = metric_weights(&results);
    Ok(Report {
        markdown: dir.join("report.md"),
        plots: Vec::new(),
        runs,
        scaling,
        formulations,
        backbones,
        results,
        metric_weights,
    })
}

/// The values, sorted, each once.
fn distinct(values: impl Iterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = values.collect();
    v.sort();
    v.dedup();
    v
}
