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
    /// Latent shards in aspect buckets: every rank's bucketed loader position (the step of the
    /// bucket schedule and each bucket stream's position), by rank.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_bucket_positions: Option<Vec<flowscale_data::shards::loader::BucketedPosition>>,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by `scripts/fuzz state_json`: serde_json's default float parsing is off by an ulp
    /// for some inputs, so a saved `train_flops` of 1.5000011111111113e63 read back as
    /// ...112e63 and the resumed state differed from the saved one. The workspace now enables
    /// serde_json's `float_roundtrip`.
    #[test]
    fn floats_read_back_bit_for_bit() {
        let state = TrainState {
            step: 500,
            images_seen: 32000,
            config_hash: "0123abcd".into(),
            seed: 0,
            rng_state: [1, 2, 3, 4],
            data_epoch: 0,
            data_index: 6,
            data_positions: None,
            data_bucket_positions: None,
            lr: 1.900018048772776,
            wall_time_s: 12.5,
            skipped_steps: 0,
            train_flops: 1.5000011111111113e63,
            best_val_loss: Some((1.900018048772776, 500)),
            flowscale_version: "0.1.0".into(),
        };
        let json = serde_json::to_vec_pretty(&state).unwrap();
        let back: TrainState = serde_json::from_slice(&json).unwrap();
        assert_eq!(back.train_flops.to_bits(), state.train_flops.to_bits());
        assert_eq!(back, state);
    }
}
