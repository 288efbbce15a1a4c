//! The DiT block (Peebles & Xie): adaLN-Zero modulated self-attention and MLP over one token
//! sequence, one weight set. DiT runs it over `[context; image]`; UViT adds long skips around it
//! (`crate::uvit_block`). Keys follow diffusers' `BasicTransformerBlock` of
//! `DiTTransformer2DModel`: `norm1.linear`, `attn1.*`, `ff.*` (docs/backbones.md).

use crate::activation_checkpointing::StreamBlock;
use crate::attention::SelfAttention;
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
    attn1: SelfAttention,
    ff: FeedForward,
}

impl DitBlock {
    pub(crate) fn new(
        scope: &Scope,
        hidden: i64,
        heads: i64,
        head_dim: i64,
        qk_norm: bool,
    ) -> Result<Self> {
        Ok(DitBlock {
            norm1: Modulation::new(&scope.sub("norm1"), hidden, 6)?,
            attn1: SelfAttention::new(&scope.sub("attn1"), hidden, heads, head_dim, qk_norm)?,
            ff: FeedForward::new(&scope.sub("ff"), hidden)?,
        })
    }

    /// `x + gate_a * Attn(mod(LN x))`, then `+ gate_m * MLP(mod(LN x))`; the attention is
    /// `attend` (SDPA or the math form with statistics).
    fn forward_via<T>(
        &self,
        x: &Tensor,
        c: &Tensor,
        attend: impl FnOnce(&SelfAttention, &Tensor) -> Result<(Tensor, T)>,
    ) -> Result<(Tensor, T)> {
        let m = self.norm1.forward(c)?;
        let x_in = modulate(&layer_norm(x, NORM_EPS)?, &m[0], &m[1])?;
        let (a, extra) = attend(&self.attn1, &x_in)?;
        let x = x.f_add(&a.f_mul(&m[2].f_unsqueeze(1)?)?)?;
        Ok((mlp_residual(&self.ff, &x, &m[3], &m[4], &m[5])?, extra))
    }

    pub(crate) fn forward(&self, x: &Tensor, c: &Tensor) -> Result<Tensor> {
        Ok(self.forward_via(x, c, |a, x| Ok((a.forward(x)?, ())))?.0)
    }

    pub(crate) fn forward_with_stats(
        &self,
        x: &Tensor,
        c: &Tensor,
    ) -> Result<(Tensor, AttentionStats)> {
        self.forward_via(x, c, |a, x| a.forward_with_stats(x))
    }
}

/// Streams `[sequence]`.
impl StreamBlock for DitBlock {
    fn forward_streams(&self, streams: &[Tensor], c: &Tensor) -> Result<Vec<Tensor>> {
        Ok(vec![self.forward(&streams[0], c)?])
    }
}

impl BackboneBlock for DitBlock {
    fn forward_streams_with_stats(
        &self,
        streams: &[Tensor],
        c: &Tensor,
    ) -> Result<(Vec<Tensor>, AttentionStats)> {
        let (x, stats) = self.forward_with_stats(&streams[0], c)?;
        Ok((vec![x], stats))
    }
}
