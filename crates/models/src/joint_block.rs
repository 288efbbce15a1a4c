//! The MMDiT joint block: two (MMDiT) or three (MMDiT-3) streams with separate weights, adaLN-Zero
//! modulation from the conditioning vector, joint attention and per-stream MLPs.

use crate::activation_checkpointing::StreamBlock;
use crate::attention::{context_suffix, JointAttention};
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
pub(crate) fn mlp_residual(
    ff: &FeedForward,
    s: &Tensor,
    shift: &Tensor,
    scale: &Tensor,
    gate: &Tensor,
) -> Result<Tensor> {
    let h = modulate(&layer_norm(s, NORM_EPS)?, shift, scale)?;
    Ok(s.f_add(&ff.forward(&h)?.f_mul(&gate.f_unsqueeze(1)?)?)?)
}

/// One context stream's half of a joint block: its modulation (6 chunks, or for the pre-only
/// last block 2 chunks in diffusers' order (scale, shift)) and its MLP (absent when pre-only).
#[derive(Debug)]
struct ContextHalf {
    norm1_context: Modulation,
    ff_context: Option<FeedForward>,
}

/// `transformer_blocks.N`: the image stream and one (MMDiT) or two (MMDiT-3, the second under
/// names with the suffix `_2`) context streams.
#[derive(Debug)]
pub(crate) struct JointBlock {
    norm1: Modulation,
    contexts: Vec<ContextHalf>,
    attn: JointAttention,
    ff: FeedForward,
}

impl JointBlock {
    /// Parameters are created in diffusers' order for the image and first context stream, the
    /// second context stream's after them.
    pub(crate) fn new(
        scope: &Scope,
        hidden: i64,
        heads: i64,
        head_dim: i64,
        qk_norm: bool,
        context_pre_only: bool,
        contexts: usize,
    ) -> Result<Self> {
        let ctx_chunks = if context_pre_only { 2 } else { 6 };
        let norm1 = Modulation::new(&scope.sub("norm1"), hidden, 6)?;
        let norm1_context = |i: usize| {
            Modulation::new(
                &scope.sub(format!("norm1_context{}", context_suffix(i))),
                hidden,
                ctx_chunks,
            )
        };
        let ff_context = |i: usize| -> Result<Option<FeedForward>> {
            if context_pre_only {
                Ok(None)
            } else {
                let name = format!("ff_context{}", context_suffix(i));
                Ok(Some(FeedForward::new(&scope.sub(name), hidden)?))
            }
        };
        let first_norm = norm1_context(0)?;
        let attn = JointAttention::new(
            &scope.sub("attn"),
            hidden,
            heads,
            head_dim,
            qk_norm,
            context_pre_only,
            contexts,
        )?;
        let ff = FeedForward::new(&scope.sub("ff"), hidden)?;
        let mut halves = vec![ContextHalf {
            norm1_context: first_norm,
            ff_context: ff_context(0)?,
        }];
        for i in 1..contexts {
            halves.push(ContextHalf {
                norm1_context: norm1_context(i)?,
                ff_context: ff_context(i)?,
            });
        }
        Ok(JointBlock {
            norm1,
            contexts: halves,
            attn,
            ff,
        })
    }

    /// Returns the new image stream and (unless pre-only) the new context streams.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        ctxs: &[Tensor],
        c: &Tensor,
    ) -> Result<(Tensor, Option<Vec<Tensor>>)> {
        let (x, ctxs, ()) = self.forward_via(x, ctxs, c, |attn, x_in, ctx_in| {
            let (img, ctx_out) = attn.forward(x_in, ctx_in)?;
            Ok((img, ctx_out, ()))
        })?;
        Ok((x, ctxs))
    }

    /// [`JointBlock::forward`] through the math-form attention, with its logits' statistics.
    pub(crate) fn forward_with_stats(
        &self,
        x: &Tensor,
        ctxs: &[Tensor],
        c: &Tensor,
    ) -> Result<(Tensor, Option<Vec<Tensor>>, AttentionStats)> {
        self.forward_via(x, ctxs, c, |attn, x_in, ctx_in| {
            attn.forward_with_stats(x_in, ctx_in)
        })
    }

    /// The block with `attend(attention, image input, context inputs)` as its attention, so the
    /// fused and the diagnostic forward share every other operation; `attend`'s extra value
    /// (the statistics, or nothing) is passed through.
    #[allow(clippy::type_complexity)]
    fn forward_via<T>(
        &self,
        x: &Tensor,
        ctxs: &[Tensor],
        c: &Tensor,
        attend: impl FnOnce(
            &JointAttention,
            &Tensor,
            &[Tensor],
        ) -> Result<(Tensor, Option<Vec<Tensor>>, T)>,
    ) -> Result<(Tensor, Option<Vec<Tensor>>, T)> {
        let m = self.norm1.forward(c)?;
        let x_in = modulate(&layer_norm(x, NORM_EPS)?, &m[0], &m[1])?;
        let mut mods = Vec::with_capacity(ctxs.len());
        let mut ctx_in = Vec::with_capacity(ctxs.len());
        for (ctx, half) in ctxs.iter().zip(&self.contexts) {
            let mc = half.norm1_context.forward(c)?;
            ctx_in.push(if half.ff_context.is_some() {
                modulate(&layer_norm(ctx, NORM_EPS)?, &mc[0], &mc[1])?
            } else {
                // AdaLayerNormContinuous: (scale, shift).
                modulate(&layer_norm(ctx, NORM_EPS)?, &mc[1], &mc[0])?
            });
            mods.push(mc);
        }
        let (attn_x, attn_ctx, extra) = attend(&self.attn, &x_in, &ctx_in)?;
        let x = x.f_add(&attn_x.f_mul(&m[2].f_unsqueeze(1)?)?)?;
        let x = mlp_residual(&self.ff, &x, &m[3], &m[4], &m[5])?;
        let ctxs = match attn_ctx {
            Some(outs) => {
                let mut next = Vec::with_capacity(outs.len());
                for (((ctx, a), mc), half) in ctxs.iter().zip(outs).zip(&mods).zip(&self.contexts) {
                    let ctx = ctx.f_add(&a.f_mul(&mc[2].f_unsqueeze(1)?)?)?;
                    next.push(match &half.ff_context {
                        Some(ff) => mlp_residual(ff, &ctx, &mc[3], &mc[4], &mc[5])?,
                        None => ctx,
                    });
                }
                Some(next)
            }
            None => None,
        };
        Ok((x, ctxs, extra))
    }
}

/// The block over the streams `[image, context...]`; the pre-only last block passes the
/// contexts through unchanged (nothing reads them afterwards).
impl StreamBlock for JointBlock {
    fn forward_streams(&self, streams: &[Tensor], c: &Tensor) -> Result<Vec<Tensor>> {
        let (x, ctxs) = self.forward(&streams[0], &streams[1..], c)?;
        let ctxs = ctxs.unwrap_or_else(|| streams[1..].iter().map(Tensor::shallow_clone).collect());
        Ok(std::iter::once(x).chain(ctxs).collect())
    }
}

impl crate::backbone_block::BackboneBlock for JointBlock {
    fn forward_streams_with_stats(
        &self,
        streams: &[Tensor],
        c: &Tensor,
    ) -> Result<(Vec<Tensor>, AttentionStats)> {
        let (x, ctxs, stats) = self.forward_with_stats(&streams[0], &streams[1..], c)?;
        let ctxs = ctxs.unwrap_or_else(|| streams[1..].iter().map(Tensor::shallow_clone).collect());
        Ok((std::iter::once(x).chain(ctxs).collect(), stats))
    }
}
