//! Joint attention: both streams project their own q, k, v (optionally RMS-normed per head),
//! attend together over the concatenated sequence with SDPA, and split back. A math-form twin
//! reports the logits' statistics (`crate::attention_stats`).

use crate::attention_stats::{logit_stats, stat_kind, AttentionStats};
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
        let (q, k, v, n_img) = self.joint_qkv(x, ctx)?;
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
        self.project_out(&out, n_img)
    }

    /// [`JointAttention::forward`] in the explicit math form `softmax(q k^T / sqrt(d)) v`, with
    /// the statistics of its logits. Logits, softmax and `p v` run in at least fp32 with CUDA
    /// autocast off, so the diagnostics do not inherit bf16 rounding.
    pub(crate) fn forward_with_stats(
        &self,
        x: &Tensor,
        ctx: &Tensor,
    ) -> Result<(Tensor, Option<Tensor>, AttentionStats)> {
        let (q, k, v, n_img) = self.joint_qkv(x, ctx)?;
        let kind = stat_kind(q.kind());
        let scale = 1.0 / (q.size()[3] as f64).sqrt();
        let (out, stats) = tch::autocast(false, || -> Result<(Tensor, AttentionStats)> {
            let logits = q
                .f_to_kind(kind)?
                .f_matmul(&k.f_to_kind(kind)?.f_transpose(-2, -1)?)?
                .f_mul_scalar(scale)?;
            let stats = logit_stats(&logits)?;
            let out = logits
                .f_softmax(-1, kind)?
                .f_matmul(&v.f_to_kind(kind)?)?
                .f_to_kind(v.kind())?;
            Ok((out, stats))
        })?;
        let (img, ctx_out) = self.project_out(&out, n_img)?;
        Ok((img, ctx_out, stats))
    }

    /// q, k, v of the joint sequence `[image; context]` as `[B, heads, N, head_dim]`, and the
    /// number of image tokens.
    fn joint_qkv(&self, x: &Tensor, ctx: &Tensor) -> Result<(Tensor, Tensor, Tensor, i64)> {
        let n_img = x.size()[1];
        let (qi, ki, vi) = self.image.project(x, self.heads)?;
        let (qc, kc, vc) = self.context.project(ctx, self.heads)?;
        let q = Tensor::f_cat(&[qi, qc], 2)?;
        let k = Tensor::f_cat(&[ki, kc], 2)?;
        let v = Tensor::f_cat(&[vi, vc], 2)?;
        Ok((q, k, v, n_img))
    }

    /// The attention output `[B, heads, N, head_dim]` split back into the two streams and
    /// projected.
    fn project_out(&self, out: &Tensor, n_img: i64) -> Result<(Tensor, Option<Tensor>)> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn, Device, Kind};

    /// `x W^T + b` with the weights read from the store by name.
    fn linear(vs: &nn::VarStore, name: &str, x: &Tensor) -> Tensor {
        let vars = vs.variables();
        x.matmul(&vars[&format!("{name}.weight")].tr()) + &vars[&format!("{name}.bias")]
    }

    /// The logits' max and mean row entropy from the projection weights, with the dot
    /// products, softmax and entropy summed in plain f64 loops.
    fn reference(vs: &nn::VarStore, x: &Tensor, ctx: &Tensor, heads: usize) -> (f64, f64) {
        let q = Tensor::cat(&[linear(vs, "to_q", x), linear(vs, "add_q_proj", ctx)], 1);
        let k = Tensor::cat(&[linear(vs, "to_k", x), linear(vs, "add_k_proj", ctx)], 1);
        let (b, n, hidden) = (q.size()[0], q.size()[1] as usize, q.size()[2] as usize);
        let d = hidden / heads;
        let (mut max, mut entropy_sum, mut rows) = (f64::NEG_INFINITY, 0.0, 0.0);
        for bi in 0..b {
            let qb: Vec<Vec<f64>> = Vec::try_from(q.get(bi).to_kind(Kind::Double)).unwrap();
            let kb: Vec<Vec<f64>> = Vec::try_from(k.get(bi).to_kind(Kind::Double)).unwrap();
            for h in 0..heads {
                for qi in &qb {
                    let row: Vec<f64> = kb
                        .iter()
                        .map(|kj| {
                            (0..d).map(|e| qi[h * d + e] * kj[h * d + e]).sum::<f64>()
                                / (d as f64).sqrt()
                        })
                        .collect();
                    let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    max = max.max(m);
                    let z: f64 = row.iter().map(|l| (l - m).exp()).sum();
                    entropy_sum -= row
                        .iter()
                        .map(|l| {
                            let p = (l - m).exp() / z;
                            p * p.ln()
                        })
                        .sum::<f64>();
                    rows += 1.0;
                }
            }
        }
        assert_eq!(rows as usize, b as usize * heads * n);
        (max, entropy_sum / rows)
    }

    #[test]
    fn stats_match_a_direct_computation_and_the_output_matches_sdpa() {
        tch::manual_seed(3);
        let (hidden, heads) = (6, 2);
        let vs = nn::VarStore::new(Device::Cpu);
        let attn =
            JointAttention::new(&Scope::store(vs.root()), hidden, heads, 3, false, false).unwrap();
        tch::no_grad(|| {
            for mut v in vs.trainable_variables() {
                v.copy_(&(Tensor::randn_like(&v) * 0.7));
            }
        });
        let x = Tensor::randn([2, 5, hidden], (Kind::Float, Device::Cpu));
        let ctx = Tensor::randn([2, 3, hidden], (Kind::Float, Device::Cpu));
        let (img, ctx_out, stats) = tch::no_grad(|| attn.forward_with_stats(&x, &ctx)).unwrap();
        let (max, entropy) = reference(&vs, &x, &ctx, heads as usize);
        assert!((stats.max_logit - max).abs() < 1e-5, "{stats:?} vs {max}");
        assert!(
            (stats.entropy - entropy).abs() < 1e-5,
            "{stats:?} vs {entropy}"
        );
        // Not a degenerate case: the rows are neither uniform nor one-hot.
        assert!(entropy > 0.1 && entropy < 8f64.ln() - 0.1, "{entropy}");
        let (img_ref, ctx_ref) = tch::no_grad(|| attn.forward(&x, &ctx)).unwrap();
        let diff = |a: &Tensor, b: &Tensor| (a - b).abs().max().double_value(&[]);
        assert!(diff(&img, &img_ref) < 1e-5);
        assert!(diff(&ctx_out.unwrap(), &ctx_ref.unwrap()) < 1e-5);
    }
}
