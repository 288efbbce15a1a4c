//! Initialising a run's model from another run's checkpoint (`[init]`): SD3's second stage
//! continues the 256² model at higher resolution with QK-norm added. The new model may differ
//! from the source in the ways that stage needs, and the key report says how each tensor was
//! treated:
//!
//! - loaded: a trained tensor of the new model found in the source's chosen weight set with the
//!   same shape;
//! - new: a trained tensor the source lacks (e.g. added QK-norm scales), kept at its
//!   from-scratch initialisation (RMSNorm scales at one, so the block computes what it did up to
//!   the normalisation itself);
//! - regenerated: a fixed buffer (the position table), never loaded but computed from this run's
//!   config, whatever shape the source's had;
//! - dropped: a source tensor the new model does not have (e.g. the table under the
//!   interpolated grid).
//!
//! A trained tensor present in both with different shapes is an error naming it and both shapes.

use super::checkpoint::{RunCheckpoint, StepChoice, WeightSet};
use super::model::RunModel;
use crate::config::InitConfig;
use crate::error::{Result, TrainError};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use tch::Tensor;

/// File name of the report in the run directory.
pub const INIT_REPORT_FILE: &str = "init.json";

/// How each tensor of an initialised model came to be (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InitReport {
    /// The checkpoint folder the weights came from.
    pub source: PathBuf,
    pub source_step: u64,
    /// The weight set, as `--weights` writes it (`raw`, `ema:0.999`).
    pub weights: String,
    pub loaded: Vec<String>,
    /// Key -> shape.
    pub new: BTreeMap<String, Vec<i64>>,
    /// Key -> (the source's shape if it had the buffer, this model's shape).
    pub regenerated: BTreeMap<String, (Option<Vec<i64>>, Vec<i64>)>,
    /// Key -> the source's shape.
    pub dropped: BTreeMap<String, Vec<i64>>,
}

impl InitReport {
    /// The report as printed at the start of the run.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "init from {} (step {}, weights {}): {} tensors loaded, {} new, {} regenerated, {} \
             dropped",
            self.source.display(),
            self.source_step,
            self.weights,
            self.loaded.len(),
            self.new.len(),
            self.regenerated.len(),
            self.dropped.len()
        );
        for (k, shape) in &self.new {
            out.push_str(&format!("\n  new (initialised fresh): {k} {shape:?}"));
        }
        for (k, (from, to)) in &self.regenerated {
            let from = from
                .as_ref()
                .map_or("absent in the source".to_owned(), |s| format!("{s:?}"));
            out.push_str(&format!(
                "\n  regenerated (fixed buffer, from this run's config): {k} {from} -> {to:?}"
            ));
        }
        for (k, shape) in &self.dropped {
            out.push_str(&format!("\n  dropped (not in this model): {k} {shape:?}"));
        }
        out
    }

    /// Writes the report as JSON to `path` (atomically).
    pub fn write(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self)
            .map_err(|e| TrainError::Invalid(format!("cannot serialise the init report: {e}")))?;
        crate::run_dir::write_atomic(path, json.as_bytes())?;
        Ok(())
    }
}

/// Loads the weights `init` names into `model` and reports how every tensor was treated.
pub fn init_from_checkpoint(model: &RunModel, init: &InitConfig) -> Result<InitReport> {
    let choice = init
        .weight_choice()
        .map_err(|e| TrainError::Invalid(format!("init.weights: {e}")))?;
    let ck = RunCheckpoint::open(Path::new(&init.from), StepChoice::Latest)
        .map_err(|e| TrainError::Invalid(format!("init.from = {:?}: {e}", init.from)))?;
    let set = ck
        .weight_set(&choice)
        .map_err(|e| TrainError::Invalid(format!("init.weights = {:?}: {e}", init.weights)))?;
    let chosen = ck.group(&set.group())?;
    // An EMA group holds the trained tensors only; the source's buffers are in its raw group.
    let raw = match set {
        WeightSet::Raw => None,
        _ => Some(ck.group(&WeightSet::Raw.group())?),
    };
    let source_buffers: HashMap<&String, &Tensor> = raw
        .into_iter()
        .flatten()
        .filter(|(k, _)| !chosen.contains_key(*k))
        .collect();
    let params = model.params();
    let buffers = model.buffers();
    let mut report = InitReport {
        source: ck.dir().to_path_buf(),
        source_step: ck.checkpoint.step,
        weights: set.label(),
        loaded: Vec::new(),
        new: BTreeMap::new(),
        regenerated: BTreeMap::new(),
        dropped: BTreeMap::new(),
    };
    let mut mismatched = Vec::new();
    let mut to_copy = Vec::new();
    for (k, p) in &params {
        match chosen.get(k) {
            None => {
                report.new.insert(k.clone(), p.size());
            }
            Some(t) if t.size() != p.size() => mismatched.push(format!(
                "{k}: the source's shape {:?}, this model's {:?}",
                t.size(),
                p.size()
            )),
            Some(t) => {
                report.loaded.push(k.clone());
                to_copy.push((p.shallow_clone(), t));
            }
        }
    }
    if !mismatched.is_empty() {
        return Err(TrainError::Invalid(format!(
            "init.from = {:?}: {} ({}) does not fit this model; only fixed buffers (the position \
             table) may change shape:\n  {}",
            init.from,
            ck.dir().display(),
            report.weights,
            mismatched.join("\n  ")
        )));
    }
    if report.loaded.is_empty() {
        return Err(TrainError::Invalid(format!(
            "init.from = {:?}: no tensor of {} ({}) belongs to this model",
            init.from,
            ck.dir().display(),
            report.weights
        )));
    }
    for (k, b) in &buffers {
        let from = chosen
            .get(k)
            .or_else(|| source_buffers.get(k).copied())
            .map(Tensor::size);
        report.regenerated.insert(k.clone(), (from, b.size()));
    }
    let ours: std::collections::HashSet<&String> =
        params.iter().chain(&buffers).map(|(k, _)| k).collect();
    for (k, t) in chosen
        .iter()
        .chain(source_buffers.iter().map(|(k, t)| (*k, *t)))
    {
        if !ours.contains(k) {
            report.dropped.insert(k.clone(), t.size());
        }
    }
    let _guard = tch::no_grad_guard();
    for (mut p, t) in to_copy {
        p.f_copy_(t)?;
    }
    Ok(report)
}
