//! Cost accounting: parameter counts from the model's own constructors, and analytic forward
//! multiply-adds per sample.
//!
//! Conventions: a multiply-add (MAC) is one multiplication plus one addition; FLOPs = 2 MACs.
//! Only matrix products are counted (linears, the patch conv, attention's QK^T and AV);
//! norms, activations, softmax and elementwise modulation are left out (< 1% at SD3 sizes).
//! Training FLOPs per step = 3 x forward FLOPs x batch (backward = 2 x forward), no activation
//! recomputation.

use crate::backbone::Backbone;
use crate::backbone_kind::BackboneKind;
use crate::config::MmditConfig;
use crate::embeddings::TIMESTEP_CHANNELS;
use crate::error::{ModelError, Result};

/// Parameter counts of a config, from [`Backbone::layout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamCount {
    /// Trainable parameters.
    pub trainable: i64,
    /// Fixed buffers saved with the model (the position table).
    pub buffers: i64,
}

pub fn param_count(config: &MmditConfig) -> Result<ParamCount> {
    let layout = Backbone::layout(config)?;
    let sum = |trainable: bool| {
        layout
            .iter()
            .filter(|p| p.trainable == trainable)
            .map(|p| p.numel())
            .sum()
    };
    Ok(ParamCount {
        trainable: sum(true),
        buffers: sum(false),
    })
}

/// Forward multiply-adds of one sample, by part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardCost {
    pub image_tokens: i64,
    pub context_tokens: i64,
    /// Patch embedding, timestep/pooled MLPs, context embedder.
    pub embed_macs: i64,
    /// adaLN modulation linears of all blocks and the final layer.
    pub modulation_macs: i64,
    /// q, k, v and output projections.
    pub projection_macs: i64,
    /// QK^T and AV.
    pub attention_macs: i64,
    pub mlp_macs: i64,
    /// Final projection to patches.
    pub output_macs: i64,
}

impl ForwardCost {
    pub fn macs(&self) -> i64 {
        self.embed_macs
            + self.modulation_macs
            + self.projection_macs
            + self.attention_macs
            + self.mlp_macs
            + self.output_macs
    }
    pub fn flops(&self) -> f64 {
        2.0 * self.macs() as f64
    }
    /// Training FLOPs of one step of `batch` samples (3 x forward).
    pub fn train_step_flops(&self, batch: i64) -> f64 {
        3.0 * self.flops() * batch as f64
    }
}

/// Analytic forward cost for a latent of `height x width` and `context_len` text tokens.
pub fn forward_cost(
    config: &MmditConfig,
    height: i64,
    width: i64,
    context_len: i64,
) -> Result<ForwardCost> {
    config.validate()?;
    let p = config.patch_size;
    if height % p != 0 || width % p != 0 || height <= 0 || width <= 0 || context_len < 0 {
        return Err(ModelError::Input(format!(
            "latent {height} x {width} must be positive multiples of the patch size {p}, \
             context length >= 0"
        )));
    }
    let (h, d) = (config.hidden(), config.num_layers);
    let n = (height / p) * (width / p);
    let l = context_len;
    let s = n + l;
    let embed = n * h * config.in_channels * p * p
        + (TIMESTEP_CHANNELS * h + h * h)
        + (config.pooled_projection_dim * h + h * h)
        + l * config.joint_attention_dim * h;
    // The final layer's modulation (2H) is common to all.
    let (modulation, projection, attention, mlp) = match config.backbone {
        BackboneKind::Mmdit | BackboneKind::Mmdit3 => {
            // Per block: image 6H, each context stream 6H (last block 2H). q, k, v for every
            // stream in every block; image out-proj everywhere, context out-proj except in the
            // last block; the context streams together hold the l context tokens.
            let k = config.backbone.context_streams() as i64;
            (
                (d * 6 * h + k * ((d - 1) * 6 * h + 2 * h) + 2 * h) * h,
                d * 3 * s * h * h + d * n * h * h + (d - 1) * l * h * h,
                d * 2 * s * s * h,
                d * 8 * n * h * h + (d - 1) * 8 * l * h * h,
            )
        }
        BackboneKind::Dit | BackboneKind::Uvit => {
            // One weight set over the s = n + l tokens; UViT adds a Linear(2H, H) over the
            // sequence in each of the d / 2 skip blocks.
            let skips = if config.backbone == BackboneKind::Uvit {
                d / 2
            } else {
                0
            };
            (
                (d * 6 * h + 2 * h) * h,
                d * 4 * s * h * h + skips * 2 * s * h * h,
                d * 2 * s * s * h,
                d * 8 * s * h * h,
            )
        }
        BackboneKind::CrossDit => {
            // Self-attention over the n image tokens (q, k, v, out); cross-attention: q and out
            // over the image tokens, k and v over the context tokens; QK^T and AV of both.
            (
                (d * 6 * h + 2 * h) * h,
                d * (4 * n + 2 * n + 2 * l) * h * h,
                d * (2 * n * n + 2 * n * l) * h,
                d * 8 * n * h * h,
            )
        }
    };
    let output = n * h * p * p * config.out_channels();
    Ok(ForwardCost {
        image_tokens: n,
        context_tokens: l,
        embed_macs: embed,
        modulation_macs: modulation,
        projection_macs: projection,
        attention_macs: attention,
        mlp_macs: mlp,
        output_macs: output,
    })
}
