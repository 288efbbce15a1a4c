//! `flowscale-train`: run configuration today; the training loop, optimiser, EMA, checkpointing
//! and logging land here with the trainer issue.

pub mod config;
