//! `flowscale-train`: run configuration, the run layer (a run's model, data and checkpoints, as
//! the trainer, evaluation and export share them), the training loop and its parts
//! (conditioning, optimiser, EMA, checkpoints, logging, validation, sample grids), and
//! generation from a trained run (prompts or classes to images).

pub mod batch_plan;
pub mod checkpoint;
pub mod cond_input;
pub mod conditioning;
pub mod config;
pub mod distributed;
pub mod ema;
pub mod error;
pub mod export;
pub mod generation;
pub mod host_memory;
pub mod image_grid;
pub mod interrupt;
pub mod memory;
pub mod metrics;
pub mod optim;
pub mod peak_flops;
pub mod posthoc;
pub mod resume_compat;
pub mod run;
pub mod run_dir;
pub mod sample_text;
pub mod sampling;
pub mod state;
pub mod tensorboard;
pub mod text_conditioning;
pub mod trainer;
pub mod validation;
pub mod weight_average;

pub use error::{Result, TrainError};
pub use run::{RunData, RunModel};
pub use trainer::{train, TrainOptions, Trainer};
