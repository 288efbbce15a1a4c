//! `flowscale-study`: sweeps of run configs (issue #9): sweep files, their expansion into runs
//! with config-derived IDs, and running them (sequentially here, or as a Slurm array).
//! Aggregation, power-law fits, plots and reports come next (docs/architecture.md).

pub mod curves;
pub mod error;
pub mod fit;
pub mod plot;
pub mod report;
pub mod run_id;
pub mod runner;
pub mod sweep;

pub use error::{Result, StudyError};
pub use fit::{fit_power_law, PowerLaw, PowerLawFit};
pub use run_id::run_id;
pub use runner::RunStatus;
pub use sweep::{describe, Sweep, SweepRun};
