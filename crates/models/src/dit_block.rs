//! The DiT block (Peebles & Xie): adaLN-Zero modulated, gated self-attention and MLP over one
//! token sequence, one weight set. DiT runs it over `[context; image]`; UViT adds long skips
//! around it (`crate::uvit_block`). With cross-attention it is the CrossDiT block (PixArt-alpha's
//! block with adaLN-Zero from the conditioning vector): between the self-attention and the MLP,
//! the image tokens attend to the context tokens (queries from the unnormalised image stream,
//! residual without gate or modulation); the context is the same in every block. Keys follow
//! diffusers' `BasicTransformerBlock`: `norm1.linear`, `attn1.*`, `attn2.*` (CrossDiT), `ff.*`
//! (docs/backbones.md).

use crate::activation_checkpointing::StreamBlock;
use crate::attention::Attention;
use crate::attention_stats::AttentionStats;
use crate::backbone_block::BackboneBlock;
use crate::builder::Scope;
use crate::error::Result;
use crate::joint_block::{mlp_residual, Modulation, NORM_EPS};
use crate::layers::{layer_norm, modulate, FeedForward};
use tch::Tensor;

#[derive(Debug)]
pub(crate) struct DitBlock {
    norm1: Modulation,
    attn1: Attention,
    /// CrossDiT's cross-attention to the context.
    attn2: Option<Attention>,
    ff: FeedForward,
}

impl DitBlock {
    /// A DiT block, or with `cross` a CrossDiT block.
    pub(crate) fn new(
        scope: &Scope,
        hidden: i64,
        heads: i64,
        head_dim: i64,
        qk_norm: bool,
        cross: bool,
    ) -> Result<Self> {
        let attention =
            |name: &str| Attention::new(&scope.sub(name), hidden, heads, head_dim, qk_norm);
        Ok(DitBlock {
            norm1: Modulation::new(&scope.sub("norm1"), hidden, 6)?,
            attn1: attention("attn1")?,
            attn2: if cross {
                Some(attention("attn2")?)
            } else {
                None
            },
            ff: FeedForward::new(&scope.sub("ff"), hidden)?,
        })
    }

    /// The block given its six modulation vectors `m` (shift, scale, gate of the attention,
    /// then of the MLP, each `[B, H]`) and, for CrossDiT, the context; the self-attention is
    /// `attend` (SDPA, or the math form with statistics). PixArt's block with adaLN-single takes
    /// the same six from its shared table, which is what the parity test feeds both.
    fn forward_modulated<T>(
        &self,
        x: &Tensor,
        ctx: Option<&Tensor>,
        m: &[Tensor],
        attend: impl FnOnce(&Attention, &Tensor) -> Result<(Tensor, T)>,
    ) -> Result<(Tensor, T)> {
        let x_in = modulate(&layer_norm(x, NORM_EPS)?, &m[0], &m[1])?;
        let (a, extra) = attend(&self.attn1, &x_in)?;
        let mut x = x.f_add(&a.f_mul(&m[2].f_unsqueeze(1)?)?)?;
        if let (Some(attn2), Some(ctx)) = (&self.attn2, ctx) {
            x = x.f_add(&attn2.forward_from(&x, ctx)?)?;
        }
        Ok((mlp_residual(&self.ff, &x, &m[3], &m[4], &m[5])?, extra))
    }

    fn forward_via<T>(
        &self,
        streams: &[Tensor],
        c: &Tensor,
        attend: impl FnOnce(&Attention, &Tensor) -> Result<(Tensor, T)>,
    ) -> Result<(Vec<Tensor>, T)> {
        let m = self.norm1.forward(c)?;
        let (x, extra) = self.forward_modulated(&streams[0], streams.get(1), &m, attend)?;
        // CrossDiT's context passes through unchanged.
        let out = std::iter::once(x)
            .chain(streams[1..].iter().map(Tensor::shallow_clone))
            .collect();
        Ok((out, extra))
    }

    /// The sequence `x` through the block (DiT and UViT: no context stream).
    pub(crate) fn forward(&self, x: &Tensor, c: &Tensor) -> Result<Tensor> {
        let m = self.norm1.forward(c)?;
        Ok(self
            .forward_modulated(x, None, &m, |a, x| Ok((a.forward(x)?, ())))?
            .0)
    }

    pub(crate) fn forward_with_stats(
        &self,
        x: &Tensor,
        c: &Tensor,
    ) -> Result<(Tensor, AttentionStats)> {
        let m = self.norm1.forward(c)?;
        self.forward_modulated(x, None, &m, |a, x| a.forward_with_stats(x))
    }
}

/// Streams `[sequence]` (DiT) or `[image, context]` (CrossDiT).
impl StreamBlock for DitBlock {
    fn forward_streams(&self, streams: &[Tensor], c: &Tensor) -> Result<Vec<Tensor>> {
        Ok(self
            .forward_via(streams, c, |a, x| Ok((a.forward(x)?, ())))?
            .0)
    }
}

/// The statistics are the self-attention's (CrossDiT: the image tokens among themselves).
impl BackboneBlock for DitBlock {
    fn forward_streams_with_stats(
        &self,
        streams: &[Tensor],
        c: &Tensor,
    ) -> Result<(Vec<Tensor>, AttentionStats)> {
        self.forward_via(streams, c, |a, x| a.forward_with_stats(x))
    }
}

#[cfg(test)]
pub(crate) mod parity {
    use super::*;

    /// The CrossDiT block with modulation vectors given directly (the PixArt parity test).
    pub(crate) fn forward_with_modulation(
        block: &DitBlock,
        x: &Tensor,
        ctx: &Tensor,
        m: &[Tensor],
    ) -> Result<Tensor> {
        Ok(block
            .forward_modulated(x, Some(ctx), m, |a, x| Ok((a.forward(x)?, ())))?
            .0)
    }
}
