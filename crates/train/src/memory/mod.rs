//! Memory planning: what one device holds to train an MMDiT (weights, gradients, AdamW state,
//! EMAs, activations) and whether it fits. `flowscale bench memory` prints the plan; the trainer
//! compares it with the device's memory before the first step.

mod activations;
mod states;

pub use activations::{ActivationBytes, ActivationProfile};
pub use states::{StateBytes, ZeroStage};

use flowscale_models::{param_count, Checkpointing, MmditConfig};
use tch::Device;

use crate::config::Precision;
use crate::{Result, TrainError};

/// The run a plan is for.
#[derive(Debug, Clone)]
pub struct PlanSpec {
    /// The backbone; its `num_layers` is the planned depth.
    pub config: MmditConfig,
    /// Latent side (resolution / 8 for SD3's autoencoder).
    pub side: i64,
    pub context_tokens: i64,
    /// Samples one device runs forward and backward at once.
    pub micro_batch: u64,
    pub world: u64,
    pub precision: Precision,
    pub checkpointing: Checkpointing,
    pub zero: ZeroStage,
    /// EMA copies of the weights (`ema.decays` and post-hoc stds together).
    pub emas: u64,
}

/// Bytes one device holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Trainable parameters, from the model's own layout.
    pub params: u64,
    pub states: StateBytes,
    pub activations: ActivationBytes,
}

impl MemoryPlan {
    /// The plan of `spec` with activations from `profile`, measured at the same width.
    pub fn new(spec: &PlanSpec, profile: &ActivationProfile) -> Result<Self> {
        let params = trainable_params(&spec.config)?;
        let depth = u64::try_from(spec.config.num_layers).unwrap_or(0);
        Ok(Self {
            params,
            states: StateBytes::per_device(params, spec.emas, spec.world, spec.zero)?,
            activations: profile.bytes(depth, spec.micro_batch, spec.checkpointing)?,
        })
    }

    /// Measures the activations of `spec`'s width on `device`, then plans.
    pub fn measure(spec: &PlanSpec, device: Device) -> Result<(Self, ActivationProfile)> {
        let profile = ActivationProfile::measure(
            &spec.config,
            spec.side,
            spec.context_tokens,
            spec.precision,
            device,
        )?;
        Ok((Self::new(spec, &profile)?, profile))
    }

    pub fn total(&self) -> u64 {
        self.states.total() + self.activations.total()
    }

    /// The smallest world size up to `max_world` at which `zero` brings this plan (same
    /// micro-batch, so the same activations) under `capacity` bytes.
    pub fn smallest_world(
        &self,
        emas: u64,
        zero: ZeroStage,
        capacity: u64,
        max_world: u64,
    ) -> Result<Option<u64>> {
        for world in 1..=max_world {
            let states = StateBytes::per_device(self.params, emas, world, zero)?;
            if states.total() + self.activations.total() <= capacity {
                return Ok(Some(world));
            }
        }
        Ok(None)
    }
}

fn trainable_params(config: &MmditConfig) -> Result<u64> {
    let count = param_count(config)?;
    u64::try_from(count.trainable)
        .map_err(|_| TrainError::Invalid(format!("parameter count {}", count.trainable)))
}

/// GiB (2^30 bytes) as the output prints them.
pub fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

/// The warning the trainer prints when `plan` exceeds `device_bytes`; `None` when it fits.
pub fn fit_warning(plan: &MemoryPlan, device_bytes: u64, spec: &PlanSpec) -> Option<String> {
    if plan.total() <= device_bytes {
        return None;
    }
    Some(format!(
        "estimated {:.1} GiB per device (states {:.1} GiB + activations {:.1} GiB at \
         micro-batch {}, checkpointing {}) exceeds the device's {:.1} GiB: this run will likely \
         run out of memory; lower train.micro_batch_size or set train.activation_checkpointing \
         = \"blocks\" (check with `flowscale bench memory`)",
        gib(plan.total()),
        gib(plan.states.total()),
        gib(plan.activations.total()),
        spec.micro_batch,
        spec.checkpointing.name(),
        gib(device_bytes)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(depth: i64) -> PlanSpec {
        PlanSpec {
            config: MmditConfig::tiny(depth),
            side: 8,
            context_tokens: 4,
            micro_batch: 4,
            world: 1,
            precision: Precision::Fp32,
            checkpointing: Checkpointing::None,
            zero: ZeroStage::Replicated,
            emas: 1,
        }
    }

    /// A profile with chosen numbers: 1 block holds 100 + 10 b, 2 blocks 160 + 40 b; with
    /// checkpointing 1 block 50 + 5 b, 2 blocks 60 + 10 b.
    fn profile() -> ActivationProfile {
        ActivationProfile {
            device: Device::Cpu,
            precision: Precision::Fp32,
            held: [[[110, 120], [200, 240]], [[55, 60], [70, 80]]],
        }
    }

    #[test]
    fn states_are_exact_bytes_of_the_layout() {
        let s = spec(2);
        let plan = MemoryPlan::new(&s, &profile()).unwrap();
        let params = param_count(&s.config).unwrap().trainable as u64;
        assert_eq!(plan.params, params);
        assert_eq!(plan.states.weights, 4 * params);
        assert_eq!(plan.states.gradients, 4 * params);
        assert_eq!(plan.states.optimizer, 8 * params);
        assert_eq!(plan.states.emas, 4 * params);
    }

    #[test]
    fn activations_scale_with_depth_batch_and_checkpointing() {
        let p = profile();
        // Block at batch 4: (160 + 160) - (100 + 40) = 180; checkpointed: (60 + 40) - (50 + 20).
        assert_eq!(p.block(4), 180);
        assert_eq!(p.checkpointed_block(4), 30);
        let none = p.bytes(5, 4, Checkpointing::None).unwrap();
        assert_eq!(
            none,
            ActivationBytes {
                saved: 140 + 4 * 180,
                recompute: 0
            }
        );
        let blocks = p.bytes(5, 4, Checkpointing::Blocks).unwrap();
        assert_eq!(
            blocks,
            ActivationBytes {
                saved: 70 + 4 * 30,
                recompute: 180
            }
        );
        // every-2 over 5 blocks: 0, 2, 4 recompute; 4 is the last.
        let every2 = p.bytes(5, 4, Checkpointing::EveryN(2)).unwrap();
        assert_eq!(every2.saved, 70 + 2 * 30 + 2 * 180);
        assert!(p.bytes(0, 4, Checkpointing::None).is_err());
    }

    #[test]
    fn smallest_world_and_warning_follow_the_capacity() {
        let s = spec(2);
        let plan = MemoryPlan::new(&s, &profile()).unwrap();
        let total = plan.total();
        assert!(fit_warning(&plan, total, &s).is_none());
        let w = fit_warning(&plan, total - 1, &s).unwrap();
        assert!(w.contains("train.micro_batch_size") && w.contains("activation_checkpointing"));
        // Stage 1 at world W holds weights + grads + one whole EMA + 8 bytes / W of moments
        // per parameter.
        let p = plan.params;
        let capacity = 12 * p + 8 * p.div_ceil(3) + plan.activations.total();
        let found = plan
            .smallest_world(1, ZeroStage::Optimizer, capacity, 64)
            .unwrap();
        assert_eq!(found, Some(3));
        assert_eq!(
            plan.smallest_world(1, ZeroStage::Optimizer, 12 * p, 64)
                .unwrap(),
            None
        );
        // Stage 2 shards the gradients too: 8 bytes whole, 12 / W.
        let capacity = 8 * p + 12 * p.div_ceil(4) + plan.activations.total();
        assert_eq!(
            plan.smallest_world(1, ZeroStage::Gradients, capacity, 64)
                .unwrap(),
            Some(4)
        );
    }
}
