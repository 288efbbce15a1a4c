//! `flowscale-train`: run configuration, the training loop and its parts (conditioning,
//! optimiser, EMA, checkpoints, logging, validation, sample grids).

pub mod conditioning;
pub mod config;
pub mod error;
pub mod resume_compat;
pub mod sampling;
pub mod validation;

pub use error::{Result, TrainError};
