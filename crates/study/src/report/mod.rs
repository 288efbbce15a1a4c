//! `flowscale report`: a sweep's runs collected into one table (best EMA validation loss, the
//! paper's checkpoint rule), plots, a power-law fit of loss against training compute, the
//! two-variable law `L(N, steps)` and the compute-optimal frontier when the sweep varies model
//! size, the evaluation results (Table-1-style Pareto ranking, loss-vs-metric correlations) when
//! the runs were evaluated, and a Markdown report.
//!
//! Everything is gathered once into a [`Report`] ([`analysis`]); the plots ([`plots`],
//! [`formulation_plots`]), the tables and the Markdown ([`markdown`], [`markdown_eval`]) are
//! drawn and written from it, so they cannot disagree.

mod analysis;
mod formulation_plots;
mod markdown;
mod markdown_eval;
mod plots;

pub use analysis::{summarise, RunSummary};

use crate::error::Result;
use crate::fit::PowerLawFit;
use crate::fit_size_steps::SizeStepsFit;
use crate::frontier::{FrontierPoint, RunCurve};
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
    /// `L(C)` over every validation point of the trained runs.
    pub fit: Option<PowerLawFit>,
    /// `(training FLOPs, validation loss, index among the trained runs)`: the points of `fit`.
    pub compute_points: Vec<(f64, f64, usize)>,
    /// `L(N, steps)` when the sweep has at least 3 model sizes.
    pub size_steps: Option<SizeStepsFit>,
    /// The trained runs that have both a parameter count and FLOPs per step, in sweep order,
    /// as loss-against-compute curves: what the frontier is found over.
    pub frontier_curves: Vec<RunCurve>,
    /// The compute-optimal frontier when it has 2+ sizes. `FrontierPoint::run` indexes
    /// `frontier_curves` (not `runs`).
    pub frontier: Vec<FrontierPoint>,
    /// The formulations the runs use, sorted, each once.
    pub formulations: Vec<String>,
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

/// `results.csv` (every evaluation row, `flowscale rank` reads it) and `ranking.csv` (the
/// per-setting ranks), when the sweep has them.
fn write_tables(results: &SweepResults, dir: &Path) -> Result<()> {
    if !results.rows.is_empty() {
        write_atomic(&dir.join("results.csv"), rows_csv(&results.rows).as_bytes())?;
    }
    if let Some((_, ranking)) = &results.ranking {
        write_atomic(&dir.join("ranking.csv"), ranking.to_csv().as_bytes())?;
    }
    Ok(())
}
