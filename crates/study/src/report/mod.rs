//! `flowscale report`: a sweep's runs collected into one table (best EMA validation loss, the
//! paper's checkpoint rule; ranked within each formulation), plots, for each formulation a
//! power-law fit of loss against training compute, the two-variable law `L(N, steps)` and the
//! compute-optimal frontier when its runs vary model size ([`scaling`]; losses of different
//! formulations are on different scales, so nothing is fitted across them), the evaluation
//! results (Table-1-style Pareto ranking, loss-vs-metric correlations) when the runs were
//! evaluated, and a Markdown report. A fit whose exponent the data do not constrain
//! ([`crate::fit_bounds`]) is reported as such, not as a result, and not drawn.
//!
//! Everything is gathered once into a [`Report`] ([`analysis`]); the plots ([`plots`],
//! [`formulation_plots`]), the tables and the Markdown ([`markdown`], [`markdown_eval`]) are
//! drawn and written from it, so they cannot disagree.

mod analysis;
mod backbone_plots;
mod formulation_plots;
mod markdown;
mod markdown_backbones;
mod markdown_eval;
mod markdown_posthoc;
mod markdown_scaling;
mod plots;
mod scaling;

pub use analysis::{summarise, RunSummary};
pub use scaling::Scaling;

use crate::error::Result;
use crate::sweep::Sweep;
use crate::sweep_results::{rows_csv, SweepResults};
use flowscale_core::{write_atomic, IoError};
use std::path::{Path, PathBuf};

/// A sweep's report: what was measured and fitted, and where it was written.
pub struct Report {
    /// `report.md`.
    pub markdown: PathBuf,
    /// The plots, in the order the Markdown shows them (PNG; an SVG lies beside each).
    pub plots: Vec<PathBuf>,
    /// Every run of the sweep, in sweep order.
    pub runs: Vec<RunSummary>,
    /// The scaling analysis (compute fit, `L(N, steps)`, frontier) of each formulation with
    /// trained runs, in formulation order: one entry when the sweep uses one formulation.
    /// Nothing is fitted across formulations, whose losses are on different scales.
    pub scaling: Vec<Scaling>,
    /// The formulations the runs use, sorted, each once.
    pub formulations: Vec<String>,
    /// The backbones the runs use, sorted, each once: several make the sweep an architecture
    /// comparison (paper Fig. 4, [`markdown_backbones`]), with no scaling fit.
    pub backbones: Vec<String>,
    pub results: SweepResults,
    /// The weights whose sample metrics the plots and tables show (checkpoint selection's
    /// among the evaluated ones); `None` without evaluation results.
    pub metric_weights: Option<String>,
}

impl Report {
    /// The runs with at least one validation loss, in sweep order.
    pub fn trained(&self) -> impl Iterator<Item = &RunSummary> {
        self.runs.iter().filter(|r| r.best.is_some())
    }
}

/// Writes `report.md`, its plots and tables into `<sweep out_dir>/report/`.
pub fn write_report(sweep: &Sweep) -> Result<Report> {
    let dir = sweep.out_dir.join("report");
    std::fs::create_dir_all(&dir).map_err(|e| IoError::new(&dir, e))?;
    let mut report = analysis::analyse(sweep, &dir)?;
    report.plots = plots::draw(&report, &dir)?;
    write_tables(&report.results, &dir)?;
    let text = markdown::render(&report, sweep, &dir);
    write_atomic(&report.markdown, text.as_bytes())?;
    Ok(report)
}

/// `results.csv` (every evaluation row, `flowscale rank` reads it), `ranking.csv` (the
/// per-setting ranks) and the post-hoc EMA's `posthoc.csv` and `posthoc-ranking.csv`, when the
/// sweep has them.
fn write_tables(results: &SweepResults, dir: &Path) -> Result<()> {
    if !results.rows.is_empty() {
        write_atomic(&dir.join("results.csv"), rows_csv(&results.rows).as_bytes())?;
    }
    if let Some((_, ranking)) = &results.ranking {
        write_atomic(&dir.join("ranking.csv"), ranking.to_csv().as_bytes())?;
    }
    if let Some(p) = results.posthoc.as_ref().filter(|p| !p.rows.is_empty()) {
        write_atomic(&dir.join("posthoc.csv"), rows_csv(&p.rows).as_bytes())?;
        if let Some((_, ranking)) = &p.ranking {
            write_atomic(
                &dir.join("posthoc-ranking.csv"),
                ranking.to_csv().as_bytes(),
            )?;
        }
    }
    Ok(())
}
