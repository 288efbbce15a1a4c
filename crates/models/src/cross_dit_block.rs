//! The CrossDiT block (PixArt-alpha's transformer block with adaLN-Zero modulation from the
//! conditioning vector): modulated, gated self-attention over the image tokens; cross-attention
//! from the image tokens to the context tokens (queries from the unnormalised image stream,
//! residual without gate or modulation); modulated, gated MLP. The context stream is the same in
//! every block. Keys follow diffusers' `BasicTransformerBlock`: `attn1`, `attn2`, `ff`, with the
//! modulation at `norm1.linear` (docs/backbones.md).

use crate::activation_checkpointing::StreamBlock;
use crate::attention::{CrossAttention, SelfAttention};
use crate::attention_stats::AttentionStats;
use crate::backbone_block::BackboneBlock;
use crate::builder::Scope;
use crate::error::Result;
use crate::joint_block::{mlp_residual, Modulation, NORM_EPS};
use crate::layers::{layer_norm, modulate, FeedForward};
use tch::Tensor;

#[derive(Debug)]
pub(crate) struct CrossDitBlock {
    norm1: Modulation,
    attn1: SelfAttention,
    attn2: CrossAttention,
    ff: FeedForward,
}

impl CrossDitBlock {
    pub(crate) fn new(
        scope: &Scope,
        hidden: i64,
        heads: i64,
        head_dim: i64,
        qk_norm: bool,
    ) -> Result<Self> {
        Ok(CrossDitBlock {
            norm1: Modulation::new(&scope.sub("norm1"), hidden, 6)?,
            attn1: SelfAttention::new(&scope.sub("attn1"), hidden, heads, head_dim, qk_norm)?,
            attn2: CrossAttention::new(&scope.sub("attn2"), hidden, heads, head_dim, qk_norm)?,
            ff: FeedForward::new(&scope.sub("ff"), hidden)?,
        })
    }

    /// The block given its six modulation vectors `m` (shift, scale, gate of the attention,
    /// then of the MLP, each `[B, H]`): PixArt's block with adaLN-single takes the same six from
    /// its shared table, which is what the parity test feeds both.
    fn forward_modulated<T>(
        &self,
        x: &Tensor,
        ctx: &Tensor,
        m: &[Tensor],
        attend: impl FnOnce(&SelfAttention, &Tensor) -> Result<(Tensor, T)>,
    ) -> Result<(Tensor, T)> {
        let x_in = modulate(&layer_norm(x, NORM_EPS)?, &m[0], &m[1])?;
        let (a, extra) = attend(&self.attn1, &x_in)?;
        let x = x.f_add(&a.f_mul(&m[2].f_unsqueeze(1)?)?)?;
        let x = x.f_add(&self.attn2.forward(&x, ctx)?)?;
        Ok((mlp_residual(&self.ff, &x, &m[3], &m[4], &m[5])?, extra))
    }

    fn forward_via<T>(
        &self,
        x: &Tensor,
        ctx: &Tensor,
        c: &Tensor,
        attend: impl FnOnce(&SelfAttention, &Tensor) -> Result<(Tensor, T)>,
    ) -> Result<(Tensor, T)> {
        let m = self.norm1.forward(c)?;
        self.forward_modulated(x, ctx, &m, attend)
    }
}

/// Streams `[image, context]`; the context passes through unchanged.
impl StreamBlock for CrossDitBlock {
    fn forward_streams(&self, streams: &[Tensor], c: &Tensor) -> Result<Vec<Tensor>> {
        let (x, ()) =
            self.forward_via(&streams[0], &streams[1], c, |a, x| Ok((a.forward(x)?, ())))?;
        Ok(vec![x, streams[1].shallow_clone()])
    }
}

/// The statistics are the self-attention's (the image tokens among themselves).
impl BackboneBlock for CrossDitBlock {
    fn forward_streams_with_stats(
        &self,
        streams: &[Tensor],
        c: &Tensor,
    ) -> Result<(Vec<Tensor>, AttentionStats)> {
        let (x, stats) =
            self.forward_via(&streams[0], &streams[1], c, |a, x| a.forward_with_stats(x))?;
        Ok((vec![x, streams[1].shallow_clone()], stats))
    }
}

#[cfg(test)]
pub(crate) mod parity {
    use super::*;

    /// The block with modulation vectors given directly (the PixArt parity test).
    pub(crate) fn forward_with_modulation(
        block: &CrossDitBlock,
        x: &Tensor,
        ctx: &Tensor,
        m: &[Tensor],
    ) -> Result<Tensor> {
        Ok(block
            .forward_modulated(x, ctx, m, |a, x| Ok((a.forward(x)?, ())))?
            .0)
    }
}
