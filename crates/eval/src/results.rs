//! Result rows: one number with its provenance per row, written as `results.json` (with the
//! run's and the evaluation's metadata) and `results.csv` (the rows only).

use crate::error::Result;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One measured number. Columns that do not apply to a metric are empty (e.g. the feature
/// network of a validation loss).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRow {
    pub run: String,
    /// The training data (Table 1 ranks per dataset): `eval.dataset`, or the run's.
    pub dataset: String,
    pub formulation: String,
    pub depth: u32,
    pub step: u64,
    /// `raw` or `ema<decay>`.
    pub weights: String,
    /// Sampler setting `s<steps>_cfg<scale>`, or `validation` for validation losses.
    pub setting: String,
    pub metric: String,
    pub value: f64,
    /// Samples behind the number.
    pub n: usize,
    pub feature_network: String,
    pub feature_weights_sha256: String,
    pub reference_stats_sha256: String,
    pub resize_mode: String,
    /// The schedule shift alpha the samples were drawn with (`sampling.shift`, else the run's
    /// resolved `formulation.shift`); empty for validation losses. `flowscale rank --candidate
    /// shift` ranks a shift sweep's values by it. Absent from results written before it.
    #[serde(default)]
    pub shift: Option<f64>,
}

pub const CSV_COLUMNS: [&str; 15] = [
    "run",
    "dataset",
    "formulation",
    "depth",
    "step",
    "weights",
    "setting",
    "metric",
    "value",
    "n",
    "feature_network",
    "feature_weights_sha256",
    "reference_stats_sha256",
    "resize_mode",
    "shift",
];

impl ResultRow {
    fn fields(&self) -> [String; 15] {
        [
            self.run.clone(),
            self.dataset.clone(),
            self.formulation.clone(),
            self.depth.to_string(),
            self.step.to_string(),
            self.weights.clone(),
            self.setting.clone(),
            self.metric.clone(),
            format!("{}", self.value),
            self.n.to_string(),
            self.feature_network.clone(),
            self.feature_weights_sha256.clone(),
            self.reference_stats_sha256.clone(),
            self.resize_mode.clone(),
            self.shift.map(|s| s.to_string()).unwrap_or_default(),
        ]
    }
}

/// The rows as CSV with a header.
pub fn to_csv(rows: &[ResultRow]) -> String {
    let mut out = crate::csv::line(&CSV_COLUMNS);
    for r in rows {
        out.push_str(&crate::csv::line(&r.fields()));
    }
    out
}

/// Writes `text` to `path` atomically.
pub fn write_text(path: &Path, text: &str) -> Result<()> {
    Ok(flowscale_core::write_atomic(path, text.as_bytes())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_parse_back_with_every_column() {
        let row = ResultRow {
            run: "demo".into(),
            dataset: "fashion-mnist".into(),
            formulation: "rf/lognorm(0.00, 1.00)".into(),
            depth: 3,
            step: 400,
            weights: "ema0.999".into(),
            setting: "s50_cfg2.5".into(),
            metric: "fid".into(),
            value: 12.5,
            n: 100,
            feature_network: "inception".into(),
            feature_weights_sha256: "ab".into(),
            reference_stats_sha256: "cd".into(),
            resize_mode: "bilinear".into(),
            shift: Some(3.0),
        };
        let parsed = crate::csv::parse_with_header(&to_csv(&[row]), "r.csv").unwrap();
        assert_eq!(parsed[0].len(), CSV_COLUMNS.len());
        assert_eq!(parsed[0]["formulation"], "rf/lognorm(0.00, 1.00)");
        assert_eq!(parsed[0]["value"], "12.5");
        assert_eq!(parsed[0]["dataset"], "fashion-mnist");
        assert_eq!(parsed[0]["setting"], "s50_cfg2.5");
        assert_eq!(parsed[0]["shift"], "3");
    }
}
