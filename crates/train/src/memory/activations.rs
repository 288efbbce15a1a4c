//! Activation memory measured on the instantiated architecture: the MMDiT of the planned width
//! is built with one and with two blocks, run forward with autograd at batch 1 and 2, and the
//! memory its output's graph holds is read from the device (malloc's in-use bytes on the CPU,
//! the caching allocator on CUDA). The differences give one block's share and the rest
//! (embeddings, head, the last block, which has no context output); both are taken linear in
//! the batch through the two measured points and scaled to the planned depth.

use flowscale_models::{Backbone, Checkpointing, MmditConfig};
use tch::{nn, Device, Kind, Tensor};

use crate::config::Precision;
use crate::host_memory;
use crate::{Result, TrainError};

/// Bytes a forward's graph held, per checkpointing mode, model size and batch.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivationProfile {
    pub device: Device,
    pub precision: Precision,
    /// `held[plan][blocks - 1][batch - 1]`, plan 0 = none, 1 = every block checkpointed.
    pub held: [[[u64; 2]; 2]; 2],
}

/// Saved activations at one depth and batch, and what a backward adds at its peak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivationBytes {
    /// Held by the graph between forward and backward.
    pub saved: u64,
    /// One checkpointed block's graph, rebuilt during backward (0 without checkpointing).
    pub recompute: u64,
}

impl ActivationBytes {
    pub fn total(&self) -> u64 {
        self.saved + self.recompute
    }
}

impl ActivationProfile {
    /// Measures `config`'s width (its depth is ignored) at `side` x `side` latents and
    /// `context` text tokens, under `precision` (bf16: autocast on `device`, as the trainer's
    /// forward runs on CUDA).
    pub fn measure(
        config: &MmditConfig,
        side: i64,
        context: i64,
        precision: Precision,
        device: Device,
    ) -> Result<Self> {
        if device.is_cuda() {
            flowscale_torch_ext::cuda::empty_cache()?;
        }
        let mut held = [[[0u64; 2]; 2]; 2];
        for blocks in 1..=2i64 {
            let mut cfg = config.clone();
            cfg.num_layers = blocks;
            cfg.dual_attention_layers.retain(|&i| i < blocks);
            let vs = nn::VarStore::new(device);
            let model = Backbone::new(&vs.root(), &cfg)?;
            let probe = Probe {
                model: &model,
                cfg: &cfg,
                side,
                context,
                precision,
                device,
            };
            // An unmeasured forward first: thread pools, kernel caches and workspaces that
            // persist are not activations.
            probe.held(Checkpointing::None, 1)?;
            for (p, plan) in [Checkpointing::None, Checkpointing::Blocks]
                .into_iter()
                .enumerate()
            {
                for batch in 1..=2i64 {
                    held[p][blocks as usize - 1][batch as usize - 1] = probe.held(plan, batch)?;
                }
            }
        }
        Ok(Self {
            device,
            precision,
            held,
        })
    }

    /// Bytes at `batch` of `plan` (0 none, 1 checkpointed) and `blocks`, on the line through
    /// the two measured batches (never below zero).
    fn at(&self, plan: usize, blocks: usize, batch: u64) -> f64 {
        let [b1, b2] = self.held[plan][blocks - 1].map(|v| v as f64);
        (b1 + (batch as f64 - 1.0) * (b2 - b1)).max(0.0)
    }

    /// One block (not the last) with its activations kept, at `batch`.
    pub fn block(&self, batch: u64) -> u64 {
        (self.at(0, 2, batch) - self.at(0, 1, batch)).max(0.0) as u64
    }

    /// One checkpointed block (not the last): its input streams, at `batch`.
    pub fn checkpointed_block(&self, batch: u64) -> u64 {
        (self.at(1, 2, batch) - self.at(1, 1, batch)).max(0.0) as u64
    }

    /// Held bytes at batch 2 over batch 1 of the two-block model without checkpointing: 2 when
    /// everything held scales with the batch.
    pub fn batch_ratio(&self) -> f64 {
        let [b1, b2] = self.held[0][1];
        b2 as f64 / b1.max(1) as f64
    }

    /// Activations of `depth` blocks at `batch` under `plan`. The last block and everything
    /// outside the blocks come from the one-block model (measured with its block kept or
    /// checkpointed as `plan` treats the last block); every other block adds [`Self::block`] or
    /// [`Self::checkpointed_block`].
    pub fn bytes(&self, depth: u64, batch: u64, plan: Checkpointing) -> Result<ActivationBytes> {
        if depth == 0 || batch == 0 {
            return Err(TrainError::Invalid(format!(
                "activation memory needs depth and batch >= 1, got depth {depth}, batch {batch}"
            )));
        }
        let last = (depth - 1) as usize;
        let rest = self.at(usize::from(plan.recomputes(last)), 1, batch) as u64;
        let checkpointed = (0..last).filter(|&i| plan.recomputes(i)).count() as u64;
        let kept = last as u64 - checkpointed;
        let saved = rest + kept * self.block(batch) + checkpointed * self.checkpointed_block(batch);
        let recompute = if plan.is_none() { 0 } else { self.block(batch) };
        Ok(ActivationBytes { saved, recompute })
    }

    /// How the figures were obtained, for the output.
    pub fn provenance(&self) -> String {
        let precision = match self.precision {
            Precision::Fp32 => "fp32".to_string(),
            Precision::Bf16 => format!("bf16 autocast on {:?}", self.device),
        };
        let reading = if self.device.is_cuda() {
            "CUDA caching-allocator bytes"
        } else {
            "bytes malloc has handed out (mallinfo2)"
        };
        format!(
            "measured on {:?} ({reading}) as the memory a forward's autograd graph holds, {precision}, \
             MMDiT of this width with 1 and 2 blocks at batch 1 and 2 (2 blocks: batch 2 / batch 1 = \
             {:.2}; the part that does not grow with the batch includes autocast's bf16 weight \
             copies); per-block part = 2 blocks - 1 block, scaled linearly to the depth and batch",
            self.device,
            self.batch_ratio()
        )
    }
}

/// One model's forward, measured.
struct Probe<'a> {
    model: &'a Backbone,
    cfg: &'a MmditConfig,
    side: i64,
    context: i64,
    precision: Precision,
    device: Device,
}

impl Probe<'_> {
    /// Bytes in use after a forward at `batch` under `plan` while its output (and, when
    /// checkpointed, the block tape) is alive, above the bytes in use before it.
    fn held(&self, plan: Checkpointing, batch: i64) -> Result<u64> {
        let opts = (Kind::Float, self.device);
        let cfg = self.cfg;
        let x = Tensor::f_randn([batch, cfg.in_channels, self.side, self.side], opts)?;
        let t = Tensor::f_rand([batch], opts)?.f_mul_scalar(1000.0)?;
        let ctx = Tensor::f_randn([batch, self.context, cfg.joint_attention_dim], opts)?;
        let pooled = Tensor::f_randn([batch, cfg.pooled_projection_dim], opts)?;
        let before = self.in_use()?;
        let forward =
            || -> Result<_> { Ok(self.model.forward_planned(&x, &t, &ctx, &pooled, plan)?) };
        let kept = match self.precision {
            Precision::Bf16 => {
                flowscale_torch_ext::autocast::with_autocast(self.device, Kind::BFloat16, forward)??
            }
            Precision::Fp32 => forward()?,
        };
        let after = self.in_use()?;
        drop(kept);
        Ok(after.saturating_sub(before))
    }

    fn in_use(&self) -> Result<u64> {
        match self.device {
            // The allocator counts at allocation time, in host order: no sync needed.
            Device::Cuda(i) => Ok(flowscale_torch_ext::cuda::memory_stats(i)?.allocated),
            _ => Ok(host_memory::malloc_in_use()),
        }
    }
}
