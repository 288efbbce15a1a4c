//! The JSON state saved with every checkpoint: everything besides tensors that a resumed run
//! needs to continue exactly (EDM2-style deterministic resume), plus provenance.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimiser steps completed.
    pub step: u64,
    /// Training samples consumed (all micro-batches, all processes).
    pub images_seen: u64,
    /// [`crate::resume_compat::config_hash`] of the run's config.
    pub config_hash: String,
    /// The run seed.
    pub seed: u64,
    /// State of the host generator that draws timesteps, noise seeds and CFG dropout.
    pub rng_state: [u64; 4],
    /// Data position: epoch and next index of the sampler's permutation (pixel data), or the
    /// epoch and batches taken in it of rank 0's shard loader (latent shards).
    pub data_epoch: u64,
    pub data_index: usize,
    /// Latent shards: every rank's exact loader position, by rank.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_positions: Option<Vec<flowscale_data::LoaderPosition>>,
    /// Learning rate of the last step.
    pub lr: f64,
    /// Training wall time in seconds, summed over all sessions of the run.
    pub wall_time_s: f64,
    /// Optimiser steps skipped because the loss was not finite.
    pub skipped_steps: u64,
    /// Cumulative training FLOPs (3x forward, multiply-add = 2 FLOPs).
    pub train_flops: f64,
    /// Best EMA (or raw, without EMAs) validation loss so far and its step.
    #[serde(default)]
    pub best_val_loss: Option<(f64, u64)>,
    /// flowscale version that wrote the checkpoint.
    pub flowscale_version: String,
}
