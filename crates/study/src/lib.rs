//! `flowscale-study`: sweeps of run configs (issue #9): sweep files, their expansion into runs
//! with config-derived IDs, running them (sequentially here, or as a Slurm array) and
//! evaluating them, the aggregated results (Pareto ranking, loss-vs-metric correlations),
//! scaling fits (`L(C)`, `L(N, steps)`, the compute-optimal frontier), plots and reports.

pub mod correlation;
pub mod curves;
pub mod error;
pub mod fit;
pub mod fit_bounds;
pub mod fit_size_steps;
pub mod frontier;
pub mod paper_table1;
pub mod plot;
pub mod report;
pub mod run_id;
pub mod runner;
pub mod sweep;
pub mod sweep_eval;
pub mod sweep_posthoc;
pub mod sweep_results;

pub use error::{Result, StudyError};
pub use fit::{fit_power_law, PowerLaw, PowerLawFit};
pub use fit_bounds::Unconstrained;
pub use run_id::run_id;
pub use runner::RunStatus;
pub use sweep::{describe, Sweep, SweepRun};
pub use sweep_eval::EvalStatus;
