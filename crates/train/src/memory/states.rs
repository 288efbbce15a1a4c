//! The training state one device holds per parameter, and what ZeRO's stages shard of it.
//!
//! Per trainable parameter the trainer keeps fp32 weights (the master copy, also under bf16
//! autocast), an fp32 gradient, AdamW's two fp32 moments and one fp32 copy per EMA (the
//! `ema.decays` and the post-hoc `ema.posthoc.stds`). ZeRO stage 1 splits the moments, stage 2
//! the gradients too ([`crate::distributed::zero`]); the weights and the EMAs stay whole on every
//! rank (validation and sample grids read the EMA weights whole).

pub use crate::distributed::zero::ZeroStage;
use crate::{Result, TrainError};

const FP32: u64 = 4;

/// Bytes of the training state on one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateBytes {
    pub weights: u64,
    pub gradients: u64,
    /// AdamW's first and second moments.
    pub optimizer: u64,
    /// All EMA copies together.
    pub emas: u64,
}

impl StateBytes {
    /// The state of `params` trainable parameters with `emas` EMA copies on one of `world`
    /// ranks under `zero`. A sharded part is split into `world` pieces, the largest of which
    /// (rounded up) sizes every rank.
    pub fn per_device(params: u64, emas: u64, world: u64, zero: ZeroStage) -> Result<Self> {
        if world == 0 {
            return Err(TrainError::Invalid("world size 0: needs at least 1".into()));
        }
        let shard = |elements: u64, sharded: bool| {
            if sharded {
                elements.div_ceil(world)
            } else {
                elements
            }
        };
        let moments_split = zero != ZeroStage::Replicated;
        Ok(Self {
            weights: params * FP32,
            gradients: shard(params, zero == ZeroStage::Gradients) * FP32,
            optimizer: 2 * shard(params, moments_split) * FP32,
            emas: emas * params * FP32,
        })
    }

    pub fn total(&self) -> u64 {
        self.weights + self.gradients + self.optimizer + self.emas
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicated_state_is_four_bytes_per_copy() {
        let s = StateBytes::per_device(1000, 2, 8, ZeroStage::Replicated).unwrap();
        assert_eq!(
            (s.weights, s.gradients, s.optimizer, s.emas),
            (4000, 4000, 8000, 8000)
        );
        assert_eq!(s.total(), 24_000);
    }

    #[test]
    fn stages_split_moments_then_gradients_rounding_up() {
        let one = StateBytes::per_device(1001, 1, 4, ZeroStage::Optimizer).unwrap();
        // 1001 / 4 rounds up to 251 elements per rank; the EMA stays whole.
        assert_eq!(
            (one.weights, one.gradients, one.optimizer, one.emas),
            (4004, 4004, 2 * 251 * 4, 4004)
        );
        let two = StateBytes::per_device(1001, 1, 4, ZeroStage::Gradients).unwrap();
        assert_eq!((two.weights, two.gradients), (4004, 251 * 4));
        assert_eq!((two.optimizer, two.emas), (one.optimizer, one.emas));
    }

    #[test]
    fn bad_stage_and_world_are_named() {
        let e = ZeroStage::parse("--zero", "3").unwrap_err().to_string();
        assert!(e.contains("--zero `3`"), "{e}");
        let e = StateBytes::per_device(10, 1, 0, ZeroStage::Replicated)
            .unwrap_err()
            .to_string();
        assert!(e.contains("world size 0"), "{e}");
    }
}
