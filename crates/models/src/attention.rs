//! Joint attention: both streams project their own q, k, v (optionally RMS-normed per head),
//! attend together over the concatenated sequence with SDPA, and split back.

use crate::builder::Scope;
use crate::error::Result;
use crate::layers::{Linear, RmsNorm};
use tch::Tensor;

/// QK-norm epsilon (diffusers and SD3 use 1e-6).
const QK_EPS: f64 = 1e-6;

/// q, k, v projections of one stream and their optional QK-norms.
#[derive(Debug)]
struct StreamProj {
    q: Linear,
    k: Linear,
    v: Linear,
    norm_q: Option<RmsNorm>,
    norm_k: Option<RmsNorm>,
}

impl StreamProj {
    /// `[B, N, H]` -> q, k, v as `[B, heads, N, head_dim]`.
    fn project(&self, x: &Tensor, heads: i64) -> Result<(Tensor, Tensor, Tensor)> {
        let split = |t: Tensor| -> Result<Tensor> {
            let s = t.size();
            Ok(t.f_view([s[0], s[1], heads, s[2] / heads])?
                .f_transpose(1, 2)?)
        };
        let mut q = split(self.q.forward(x)?)?;
        let mut k = split(self.k.forward(x)?)?;
        let v = split(self.v.forward(x)?)?;
        if let Some(n) = &self.norm_q {
            q = n.forward(&q)?;
        }
        if let Some(n) = &self.norm_k {
            k = n.forward(&k)?;
        }
        Ok((q, k, v))
    }
}

/// `attn.*` of a joint block (diffusers names: `to_q/k/v`, `add_q/k/v_proj`, `norm_q/k`,
/// `norm_added_q/k`, `to_out.0`, `to_add_out`).
#[derive(Debug)]
pub(crate) struct JointAttention {
    image: StreamProj,
    context: StreamProj,
    to_out: Linear,
    /// Absent in the last block, whose context output is discarded.
    to_add_out: Option<Linear>,
    heads: i64,
}

impl JointAttention {
    pub(crate) fn new(
        scope: &Scope,
        hidden: i64,
        heads: i64,
        head_dim: i64,
        qk_norm: bool,
        context_pre_only: bool,
    ) -> Result<Self> {
        let norm = |name: &str| -> Result<Option<RmsNorm>> {
            if qk_norm {
                Ok(Some(RmsNorm::new(&scope.sub(name), head_dim, QK_EPS)?))
            } else {
                Ok(None)
            }
        };
        let lin = |name: &str| Linear::xavier(&scope.sub(name), hidden, hidden);
        let image = StreamProj {
            norm_q: norm("norm_q")?,
            norm_k: norm("norm_k")?,
            q: lin("to_q")?,
            k: lin("to_k")?,
            v: lin("to_v")?,
        };
        let context = StreamProj {
            q: lin("add_q_proj")?,
            k: lin("add_k_proj")?,
            v: lin("add_v_proj")?,
            norm_q: norm("norm_added_q")?,
            norm_k: norm("norm_added_k")?,
        };
        let to_out = Linear::xavier(&scope.sub("to_out").sub(0), hidden, hidden)?;
        let to_add_out = if context_pre_only {
            None
        } else {
            Some(lin("to_add_out")?)
        };
        Ok(JointAttention {
            image,
            context,
            to_out,
            to_add_out,
            heads,
        })
    }

    /// Returns the image stream's output and, unless pre-only, the context stream's.
    pub(crate) fn forward(&self, x: &Tensor, ctx: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        let n_img = x.size()[1];
        let (qi, ki, vi) = self.image.project(x, self.heads)?;
        let (qc, kc, vc) = self.context.project(ctx, self.heads)?;
        let q = Tensor::f_cat(&[qi, qc], 2)?;
        let k = Tensor::f_cat(&[ki, kc], 2)?;
        let v = Tensor::f_cat(&[vi, vc], 2)?;
        let out = Tensor::f_scaled_dot_product_attention(
            &q,
            &k,
            &v,
            None::<&Tensor>,
            0.0,
            false,
            None,
            false,
        )?;
        let s = out.size();
        let out = out
            .f_transpose(1, 2)?
            .f_reshape([s[0], s[2], s[1] * s[3]])?;
        let img = self.to_out.forward(&out.f_narrow(1, 0, n_img)?)?;
        let ctx_out = match &self.to_add_out {
            Some(proj) => Some(proj.forward(&out.f_narrow(1, n_img, s[2] - n_img)?)?),
            None => None,
        };
        Ok((img, ctx_out))
    }
}
