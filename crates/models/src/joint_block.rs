//! The MMDiT joint block: two streams (image, context) with separate weights, adaLN-Zero
//! modulation from the conditioning vector, joint attention and per-stream MLPs.

use crate::activation_checkpointing::StreamBlock;
use crate::attention::JointAttention;
use crate::attention_stats::AttentionStats;
use crate::builder::Scope;
use crate::error::Result;
use crate::layers::{layer_norm, modulate, FeedForward, Linear};
use tch::Tensor;

/// LayerNorm epsilon of every block norm.
pub(crate) const NORM_EPS: f64 = 1e-6;

/// `Linear(SiLU(c))` with `k * hidden` outputs, zero-initialised (adaLN-Zero).
#[derive(Debug)]
pub(crate) struct Modulation {
    linear: Linear,
    chunks: i64,
}

impl Modulation {
    /// Key `<scope>.linear`.
    pub(crate) fn new(scope: &Scope, hidden: i64, chunks: i64) -> Result<Self> {
        Ok(Modulation {
            linear: Linear::zeros(&scope.sub("linear"), hidden, chunks * hidden)?,
            chunks,
        })
    }

    pub(crate) fn forward(&self, c: &Tensor) -> Result<Vec<Tensor>> {
        let m = self.linear.forward(&c.f_silu()?)?;
        Ok(m.f_chunk(self.chunks, 1)?)
    }
}

/// One stream's MLP half: `s + gate * MLP(LN(s)(1 + scale) + shift)`.
fn mlp_residual(
    ff: &FeedForward,
    s: &Tensor,
    shift: &Tensor,
    scale: &Tensor,
    gate: &Tensor,
) -> Result<Tensor> {
    let h = modulate(&layer_norm(s, NORM_EPS)?, shift, scale)?;
    Ok(s.f_add(&ff.forward(&h)?.f_mul(&gate.f_unsqueeze(1)?)?)?)
}

/// `transformer_blocks.N`.
#[derive(Debug)]
pub(crate) struct JointBlock {
    norm1: Modulation,
    /// 6 chunks (shift, scale, gate for attention and MLP), or for the pre-only last block 2
    /// chunks in diffusers' order (scale, shift).
    norm1_context: Modulation,
    attn: JointAttention,
    ff: FeedForward,
    ff_context: Option<FeedForward>,
}

impl JointBlock {
    pub(crate) fn new(
        scope: &Scope,
        hidden: i64,
        heads: i64,
        head_dim: i64,
        qk_norm: bool,
        context_pre_only: bool,
    ) -> Result<Self> {
        let ctx_chunks = if context_pre_only { 2 } else { 6 };
        Ok(JointBlock {
            norm1: Modulation::new(&scope.sub("norm1"), hidden, 6)?,
            norm1_context: Modulation::new(&scope.sub("norm1_context"), hidden, ctx_chunks)?,
            attn: JointAttention::new(
                &scope.sub("attn"),
                hidden,
                heads,
                head_dim,
                qk_norm,
                context_pre_only,
            )?,
            ff: FeedForward::new(&scope.sub("ff"), hidden)?,
            ff_context: if context_pre_only {
                None
            } else {
                Some(FeedForward::new(&scope.sub("ff_context"), hidden)?)
            },
        })
    }

    /// Returns the new image stream and (unless pre-only) the new context stream.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        ctx: &Tensor,
        c: &Tensor,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let (x, ctx, ()) = self.forward_via(x, ctx, c, |attn, x_in, ctx_in| {
            let (img, ctx_out) = attn.forward(x_in, ctx_in)?;
            Ok((img, ctx_out, ()))
        })?;
        Ok((x, ctx))
    }

    /// [`JointBlock::forward`] through the math-form attention, with its logits' statistics.
    pub(crate) fn forward_with_stats(
        &self,
        x: &Tensor,
        ctx: &Tensor,
        c: &Tensor,
    ) -> Result<(Tensor, Option<Tensor>, AttentionStats)> {
        self.forward_via(x, ctx, c, |attn, x_in, ctx_in| {
            attn.forward_with_stats(x_in, ctx_in)
        })
    }

    /// The block with `attend(attention, image input, context input)` as its attention, so the
    /// fused and the diagnostic forward share every other operation; `attend`'s extra value
    /// (the statistics, or nothing) is passed through.
    fn forward_via<T>(
        &self,
        x: &Tensor,
        ctx: &Tensor,
        c: &Tensor,
        attend: impl FnOnce(&JointAttention, &Tensor, &Tensor) -> Result<(Tensor, Option<Tensor>, T)>,
    ) -> Result<(Tensor, Option<Tensor>, T)> {
        let m = self.norm1.forward(c)?;
        let x_in = modulate(&layer_norm(x, NORM_EPS)?, &m[0], &m[1])?;
        let mc = self.norm1_context.forward(c)?;
        let ctx_in = if self.ff_context.is_some() {
            modulate(&layer_norm(ctx, NORM_EPS)?, &mc[0], &mc[1])?
        } else {
            // AdaLayerNormContinuous: (scale, shift).
            modulate(&layer_norm(ctx, NORM_EPS)?, &mc[1], &mc[0])?
        };
        let (attn_x, attn_ctx, extra) = attend(&self.attn, &x_in, &ctx_in)?;
        let x = x.f_add(&attn_x.f_mul(&m[2].f_unsqueeze(1)?)?)?;
        let x = mlp_residual(&self.ff, &x, &m[3], &m[4], &m[5])?;
        let ctx = match (&self.ff_context, attn_ctx) {
            (Some(ff), Some(a)) => {
                let ctx = ctx.f_add(&a.f_mul(&mc[2].f_unsqueeze(1)?)?)?;
                Some(mlp_residual(ff, &ctx, &mc[3], &mc[4], &mc[5])?)
            }
            _ => None,
        };
        Ok((x, ctx, extra))
    }
}

/// The block over the streams `[image, context]`; the pre-only last block passes the context
/// through unchanged (nothing reads it afterwards).
impl StreamBlock for JointBlock {
    fn forward_streams(&self, streams: &[Tensor], c: &Tensor) -> Result<Vec<Tensor>> {
        let (x, ctx) = self.forward(&streams[0], &streams[1], c)?;
        Ok(vec![x, ctx.unwrap_or_else(|| streams[1].shallow_clone())])
    }
}
