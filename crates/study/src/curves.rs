//! What a run logged, read back from its `metrics.jsonl`: validation curves per weight set and the
//! training FLOPs per step (the trainer logs cumulative FLOPs with its training lines).

use crate::error::{Result, StudyError};
use flowscale_core::IoError;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Default)]
pub struct RunCurves {
    /// Weight set (`raw`, `ema0.999`, ...) -> `(step, validation loss)` in step order.
    pub validation: BTreeMap<String, Vec<(u64, f64)>>,
    /// Training FLOPs per optimiser step (constant for a run).
    pub flops_per_step: Option<f64>,
    /// `(step, training loss)` of the logged training lines.
    pub train_loss: Vec<(u64, f64)>,
}

impl RunCurves {
    pub fn read(run_dir: &Path) -> Result<Self> {
        let path = run_dir.join("metrics.jsonl");
        let text = std::fs::read_to_string(&path).map_err(|e| IoError::new(&path, e))?;
        let mut out = RunCurves::default();
        for (n, line) in text.lines().enumerate() {
            let v: Value = serde_json::from_str(line)
                .map_err(|e| StudyError::invalid(path.display(), format!("line {}: {e}", n + 1)))?;
            let step = v["step"].as_u64().unwrap_or(0);
            match v["kind"].as_str() {
                Some("validation") => {
                    if let (Some(w), Some(l)) = (v["weights"].as_str(), v["val_loss"].as_f64()) {
                        out.validation
                            .entry(w.to_owned())
                            .or_default()
                            .push((step, l));
                    }
                }
                Some("train") => {
                    if let Some(l) = v["train_loss"].as_f64() {
                        out.train_loss.push((step, l));
                    }
                    if let Some(f) = v["progress_train_flops"].as_f64() {
                        if step > 0 {
                            out.flops_per_step = Some(f / step as f64);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// The weights checkpoint selection uses: the first EMA if the run has one (the paper's
    /// rule), else the raw weights.
    pub fn selection_weights(&self) -> Option<&str> {
        selection_weights_among(self.validation.keys().map(String::as_str))
    }

    /// `(step, loss)` of the lowest validation loss of the selection weights.
    pub fn best(&self) -> Option<(u64, f64)> {
        let w = self.selection_weights()?;
        self.validation[w]
            .iter()
            .copied()
            .min_by(|a, b| a.1.total_cmp(&b.1))
    }
}

/// The weights checkpoint selection uses among `sorted` weight-set names: the first EMA (the
/// paper's rule), else the first name.
pub(crate) fn selection_weights_among<'a>(
    sorted: impl Iterator<Item = &'a str> + Clone,
) -> Option<&'a str> {
    sorted
        .clone()
        .find(|k| k.starts_with("ema"))
        .or_else(|| sorted.clone().next())
}
