//! Attention for every backbone. Joint attention: each stream (image, one or two context
//! streams) projects its own q, k, v (optionally RMS-normed per head), all attend together over
//! the concatenated sequence with SDPA, and the result is split back per stream. Self-attention
//! (DiT, UViT, CrossDiT) and cross-attention (CrossDiT) are [`Attention`] with one or two inputs. A
//! math-form twin of each reports the logits' statistics (`crate::attention_stats`).

use crate::attention_stats::{logit_stats, stat_kind, AttentionStats};
use crate::builder::Scope;
use crate::error::Result;
use crate::layers::{Linear, RmsNorm};
use flowscale_torch_ext::autocast::without_autocast;
use tch::{Device, Kind, Tensor};

/// QK-norm epsilon (diffusers and SD3 use 1e-6).
const QK_EPS: f64 = 1e-6;

/// diffusers' keys of the image stream's (or a single sequence's) projections and norms.
const IMAGE_KEYS: [&str; 5] = ["to_q", "to_k", "to_v", "norm_q", "norm_k"];

/// diffusers' keys of the (first) context stream's projections and norms in a joint attention.
const CONTEXT_KEYS: [&str; 5] = [
    "add_q_proj",
    "add_k_proj",
    "add_v_proj",
    "norm_added_q",
    "norm_added_k",
];

/// `[B, N, H]` -> `[B, heads, N, H / heads]`.
fn split_heads(t: Tensor, heads: i64) -> Result<Tensor> {
    let s = t.size();
    Ok(t.f_view([s[0], s[1], heads, s[2] / heads])?
        .f_transpose(1, 2)?)
}

/// `[B, heads, N, d]` -> `[B, N, heads * d]`.
fn merge_heads(t: &Tensor) -> Result<Tensor> {
    let s = t.size();
    Ok(t.f_transpose(1, 2)?.f_reshape([s[0], s[2], s[1] * s[3]])?)
}

/// The longest query or key sequence for which [`attend`] computes bf16 attention on the CPU in
/// the explicit form instead of SDPA. Up to here libtorch 2.11's CPU flash attention in bf16
/// (forward + backward) takes 1.4-5x the explicit form's time (its key blocks are 512 long);
/// from about 192 tokens it depends on the batch, and from 512 SDPA is 2-3x faster. The
/// measurements are in docs/benchmarks.md, "CPU bf16 attention".
const CPU_BF16_EXPLICIT_MAX_TOKENS: i64 = 128;

/// `softmax(q k^T / sqrt(d)) v`: through SDPA, or in the explicit form where
/// [`explicit_form_is_faster`].
fn attend(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
    if explicit_form_is_faster(q, k, v) {
        return attend_explicit_bf16(q, k, v);
    }
    Ok(Tensor::f_scaled_dot_product_attention(
        q,
        k,
        v,
        None::<&Tensor>,
        0.0,
        false,
        None,
        false,
    )?)
}

/// bf16 attention (any of q, k, v in bf16, as under CPU autocast, where v comes from a bf16
/// product and a QK-normed q or k is fp32) over at most [`CPU_BF16_EXPLICIT_MAX_TOKENS`]
/// queries and keys, on the CPU.
fn explicit_form_is_faster(q: &Tensor, k: &Tensor, v: &Tensor) -> bool {
    let bf16 = [q, k, v].iter().any(|t| t.kind() == Kind::BFloat16);
    q.device() == Device::Cpu
        && bf16
        && q.size()[2] <= CPU_BF16_EXPLICIT_MAX_TOKENS
        && k.size()[2] <= CPU_BF16_EXPLICIT_MAX_TOKENS
}

/// The explicit form with the precision of the flash kernel it replaces: logits and softmax in
/// fp32 (autocast off, or the product would round the logits to bf16 and double the error of
/// the output and gradients), the probabilities times v as a bf16 product. Returns bf16.
fn attend_explicit_bf16(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
    let probs = without_autocast(q.device(), || -> Result<Tensor> {
        Ok(scaled_logits(q, k, Kind::Float)?.f_softmax(-1, Kind::Float)?)
    })??;
    Ok(probs
        .f_to_kind(Kind::BFloat16)?
        .f_matmul(&v.f_to_kind(Kind::BFloat16)?)?)
}

/// `q k^T / sqrt(head_dim)` in `kind`, `[B, heads, queries, keys]`. Call it with autocast off,
/// or the product runs in autocast's dtype whatever `kind` is.
fn scaled_logits(q: &Tensor, k: &Tensor, kind: Kind) -> Result<Tensor> {
    let scale = 1.0 / (q.size()[3] as f64).sqrt();
    Ok(q.f_to_kind(kind)?
        .f_matmul(&k.f_to_kind(kind)?.f_transpose(-2, -1)?)?
        .f_mul_scalar(scale)?)
}

/// [`attend`] in the explicit form, with the statistics of its logits. Logits, softmax and
/// `p v` run in at least fp32 with autocast off, so the diagnostics do not inherit bf16
/// rounding.
fn attend_with_stats(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<(Tensor, AttentionStats)> {
    let kind = stat_kind(q.kind());
    without_autocast(q.device(), || -> Result<(Tensor, AttentionStats)> {
        let logits = scaled_logits(q, k, kind)?;
        let stats = logit_stats(&logits)?;
        let out = logits
            .f_softmax(-1, kind)?
            .f_matmul(&v.f_to_kind(kind)?)?
            .f_to_kind(v.kind())?;
        Ok((out, stats))
    })?
}

/// The optional per-head RMSNorm of q or k at `<scope>.<name>`.
fn qk_norm(scope: &Scope, name: &str, head_dim: i64, on: bool) -> Result<Option<RmsNorm>> {
    if on {
        Ok(Some(RmsNorm::new(&scope.sub(name), head_dim, QK_EPS)?))
    } else {
        Ok(None)
    }
}

fn apply_norm(norm: &Option<RmsNorm>, t: Tensor) -> Result<Tensor> {
    match norm {
        Some(n) => n.forward(&t),
        None => Ok(t),
    }
}

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
    /// The projections at `<scope>.<q|k|v><suffix>` (xavier-uniform, zero bias) and, with
    /// QK-norm, the norms at `<scope>.<norm_q|norm_k><suffix>` (unit scale, so their creation
    /// order draws nothing).
    fn new(
        scope: &Scope,
        [q, k, v, norm_q, norm_k]: [&str; 5],
        suffix: &str,
        hidden: i64,
        head_dim: i64,
        qk_norm_on: bool,
    ) -> Result<Self> {
        let lin =
            |name: &str| Linear::xavier(&scope.sub(format!("{name}{suffix}")), hidden, hidden);
        let norm = |name: &str| qk_norm(scope, &format!("{name}{suffix}"), head_dim, qk_norm_on);
        Ok(StreamProj {
            q: lin(q)?,
            k: lin(k)?,
            v: lin(v)?,
            norm_q: norm(norm_q)?,
            norm_k: norm(norm_k)?,
        })
    }

    /// `[B, N, H]` -> q, k, v as `[B, heads, N, head_dim]`.
    fn project(&self, x: &Tensor, heads: i64) -> Result<(Tensor, Tensor, Tensor)> {
        self.project_from(x, x, heads)
    }

    /// q from `x`, k and v from `source`.
    fn project_from(
        &self,
        x: &Tensor,
        source: &Tensor,
        heads: i64,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let q = split_heads(self.q.forward(x)?, heads)?;
        let k = split_heads(self.k.forward(source)?, heads)?;
        let v = split_heads(self.v.forward(source)?, heads)?;
        Ok((
            apply_norm(&self.norm_q, q)?,
            apply_norm(&self.norm_k, k)?,
            v,
        ))
    }
}

/// One context stream's half of a joint attention: its projections and output projection
/// (absent in the last block, whose context output is discarded).
#[derive(Debug)]
struct ContextProj {
    proj: StreamProj,
    to_add_out: Option<Linear>,
}

/// `attn.*` of a joint block (diffusers names: `to_q/k/v`, `add_q/k/v_proj`, `norm_q/k`,
/// `norm_added_q/k`, `to_out.0`, `to_add_out`; MMDiT-3's second context stream repeats the
/// context names with the suffix `_2`).
#[derive(Debug)]
pub(crate) struct JointAttention {
    image: StreamProj,
    contexts: Vec<ContextProj>,
    to_out: Linear,
    heads: i64,
}

/// The key suffix of context stream `i` (0-based): none for the first (diffusers' names), `_2`
/// for the second.
pub(crate) fn context_suffix(i: usize) -> String {
    if i == 0 {
        String::new()
    } else {
        format!("_{}", i + 1)
    }
}

impl JointAttention {
    /// `contexts` context streams (1 for MMDiT, 2 for MMDiT-3). Parameters are created in
    /// diffusers' order for the first context stream, the second's after them.
    pub(crate) fn new(
        scope: &Scope,
        hidden: i64,
        heads: i64,
        head_dim: i64,
        qk_norm_on: bool,
        context_pre_only: bool,
        contexts: usize,
    ) -> Result<Self> {
        let lin = |name: &str| Linear::xavier(&scope.sub(name), hidden, hidden);
        let image = StreamProj::new(scope, IMAGE_KEYS, "", hidden, head_dim, qk_norm_on)?;
        let context = |i: usize| {
            let sfx = context_suffix(i);
            StreamProj::new(scope, CONTEXT_KEYS, &sfx, hidden, head_dim, qk_norm_on)
        };
        let add_out = |i: usize| -> Result<Option<Linear>> {
            if context_pre_only {
                Ok(None)
            } else {
                Ok(Some(lin(&format!("to_add_out{}", context_suffix(i)))?))
            }
        };
        let first = context(0)?;
        let to_out = Linear::xavier(&scope.sub("to_out").sub(0), hidden, hidden)?;
        let mut streams = vec![ContextProj {
            proj: first,
            to_add_out: add_out(0)?,
        }];
        for i in 1..contexts {
            streams.push(ContextProj {
                proj: context(i)?,
                to_add_out: add_out(i)?,
            });
        }
        Ok(JointAttention {
            image,
            contexts: streams,
            to_out,
            heads,
        })
    }

    /// Returns the image stream's output and, unless pre-only, each context stream's.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        ctxs: &[Tensor],
    ) -> Result<(Tensor, Option<Vec<Tensor>>)> {
        let (q, k, v, lens) = self.joint_qkv(x, ctxs)?;
        self.project_out(&attend(&q, &k, &v)?, &lens)
    }

    /// [`JointAttention::forward`] in the math form, with the statistics of its logits.
    pub(crate) fn forward_with_stats(
        &self,
        x: &Tensor,
        ctxs: &[Tensor],
    ) -> Result<(Tensor, Option<Vec<Tensor>>, AttentionStats)> {
        let (q, k, v, lens) = self.joint_qkv(x, ctxs)?;
        let (out, stats) = attend_with_stats(&q, &k, &v)?;
        let (img, ctx_out) = self.project_out(&out, &lens)?;
        Ok((img, ctx_out, stats))
    }

    /// q, k, v of the joint sequence `[image; context 1; context 2]` as
    /// `[B, heads, N, head_dim]`, and each stream's token count.
    fn joint_qkv(&self, x: &Tensor, ctxs: &[Tensor]) -> Result<(Tensor, Tensor, Tensor, Vec<i64>)> {
        if ctxs.len() != self.contexts.len() {
            return Err(crate::error::ModelError::Input(format!(
                "joint attention over {} context streams got {}",
                self.contexts.len(),
                ctxs.len()
            )));
        }
        let mut lens = vec![x.size()[1]];
        let (qi, ki, vi) = self.image.project(x, self.heads)?;
        let (mut qs, mut ks, mut vs) = (vec![qi], vec![ki], vec![vi]);
        for (c, proj) in ctxs.iter().zip(&self.contexts) {
            lens.push(c.size()[1]);
            let (q, k, v) = proj.proj.project(c, self.heads)?;
            qs.push(q);
            ks.push(k);
            vs.push(v);
        }
        Ok((
            Tensor::f_cat(&qs, 2)?,
            Tensor::f_cat(&ks, 2)?,
            Tensor::f_cat(&vs, 2)?,
            lens,
        ))
    }

    /// The attention output `[B, heads, N, head_dim]` split back into the streams of lengths
    /// `lens` and projected.
    fn project_out(&self, out: &Tensor, lens: &[i64]) -> Result<(Tensor, Option<Vec<Tensor>>)> {
        let out = merge_heads(out)?;
        let img = self.to_out.forward(&out.f_narrow(1, 0, lens[0])?)?;
        let mut start = lens[0];
        let mut ctx_out = Vec::with_capacity(self.contexts.len());
        for (c, &len) in self.contexts.iter().zip(&lens[1..]) {
            if let Some(proj) = &c.to_add_out {
                ctx_out.push(proj.forward(&out.f_narrow(1, start, len)?)?);
            }
            start += len;
        }
        let pre_only = self.contexts.iter().any(|c| c.to_add_out.is_none());
        Ok((img, (!pre_only).then_some(ctx_out)))
    }
}

/// Attention of one token sequence to itself or to another (diffusers' `Attention` names:
/// `to_q/k/v`, `to_out.0`, `norm_q/k` with QK-norm): `attn1` of a DiT block (self-attention) and
/// `attn2` of a CrossDiT block (queries from the image tokens, keys and values from the context,
/// as in PixArt-alpha).
#[derive(Debug)]
pub(crate) struct Attention {
    proj: StreamProj,
    to_out: Linear,
    heads: i64,
}

impl Attention {
    pub(crate) fn new(
        scope: &Scope,
        hidden: i64,
        heads: i64,
        head_dim: i64,
        qk_norm_on: bool,
    ) -> Result<Self> {
        Ok(Attention {
            proj: StreamProj::new(scope, IMAGE_KEYS, "", hidden, head_dim, qk_norm_on)?,
            to_out: Linear::xavier(&scope.sub("to_out").sub(0), hidden, hidden)?,
            heads,
        })
    }

    /// Self-attention of `x`.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_from(x, x)
    }

    /// Queries from `x`, keys and values from `source`.
    pub(crate) fn forward_from(&self, x: &Tensor, source: &Tensor) -> Result<Tensor> {
        let (q, k, v) = self.proj.project_from(x, source, self.heads)?;
        Ok(self.to_out.forward(&merge_heads(&attend(&q, &k, &v)?)?)?)
    }

    /// Self-attention of `x` in the math form, with the statistics of its logits.
    pub(crate) fn forward_with_stats(&self, x: &Tensor) -> Result<(Tensor, AttentionStats)> {
        let (q, k, v) = self.proj.project(x, self.heads)?;
        let (out, stats) = attend_with_stats(&q, &k, &v)?;
        Ok((self.to_out.forward(&merge_heads(&out)?)?, stats))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn;

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
        let attn = JointAttention::new(&Scope::store(vs.root()), hidden, heads, 3, false, false, 1)
            .unwrap();
        tch::no_grad(|| {
            for mut v in vs.trainable_variables() {
                v.copy_(&(Tensor::randn_like(&v) * 0.7));
            }
        });
        let x = Tensor::randn([2, 5, hidden], (Kind::Float, Device::Cpu));
        let ctx = Tensor::randn([2, 3, hidden], (Kind::Float, Device::Cpu));
        let (img, ctx_out, stats) =
            tch::no_grad(|| attn.forward_with_stats(&x, &[ctx.shallow_clone()])).unwrap();
        let (max, entropy) = reference(&vs, &x, &ctx, heads as usize);
        assert!((stats.max_logit - max).abs() < 1e-5, "{stats:?} vs {max}");
        assert!(
            (stats.entropy - entropy).abs() < 1e-5,
            "{stats:?} vs {entropy}"
        );
        // Not a degenerate case: the rows are neither uniform nor one-hot.
        assert!(entropy > 0.1 && entropy < 8f64.ln() - 0.1, "{entropy}");
        let (img_ref, ctx_ref) = tch::no_grad(|| attn.forward(&x, &[ctx.shallow_clone()])).unwrap();
        let diff = |a: &Tensor, b: &Tensor| (a - b).abs().max().double_value(&[]);
        assert!(diff(&img, &img_ref) < 1e-5);
        assert!(diff(&ctx_out.unwrap()[0], &ctx_ref.unwrap()[0]) < 1e-5);
    }

    /// `||a - b|| / ||b||` in f64.
    fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
        let (a, b) = (a.to_kind(Kind::Double), b.to_kind(Kind::Double));
        (&a - &b).norm().double_value(&[]) / b.norm().double_value(&[])
    }

    /// Output and q, k, v gradients of `f` on `inputs` (cast to `kinds`) under the output
    /// weights `g`, as f64, relative to the same in f64 through SDPA.
    fn errors_against_f64(
        f: impl Fn(&Tensor, &Tensor, &Tensor) -> Tensor,
        inputs: &[Tensor; 3],
        kinds: [Kind; 3],
        g: &Tensor,
    ) -> Vec<f64> {
        let run = |f: &dyn Fn(&Tensor, &Tensor, &Tensor) -> Tensor, kinds: [Kind; 3]| {
            let x: Vec<Tensor> = inputs
                .iter()
                .zip(kinds)
                .map(|(t, k)| t.to_kind(k).detach().set_requires_grad(true))
                .collect();
            let out = f(&x[0], &x[1], &x[2]);
            (out.to_kind(Kind::Double) * g).sum(Kind::Double).backward();
            let mut all = vec![out.detach()];
            all.extend(x.iter().map(|t| t.grad()));
            all
        };
        let reference = run(&|q, k, v| attend(q, k, v).unwrap(), [Kind::Double; 3]);
        run(&f, kinds)
            .iter()
            .zip(&reference)
            .map(|(a, b)| rel_err(a, b))
            .collect()
    }

    fn short_sequence_inputs(tokens: i64) -> ([Tensor; 3], Tensor) {
        tch::manual_seed(11);
        let shape = [3, 2, tokens, 32];
        let opts = (Kind::Double, Device::Cpu);
        // Logits with a standard deviation of about 6 (2.5 * 2.5), so their rounding shows.
        let qkv = [2.5, 2.5, 1.0].map(|s| Tensor::randn(shape, opts) * s);
        (qkv, Tensor::randn(shape, opts))
    }

    #[test]
    fn short_cpu_bf16_attention_is_as_accurate_as_sdpa_in_bf16() {
        let (qkv, g) = short_sequence_inputs(40);
        let bf16 = [Kind::BFloat16; 3];
        let sdpa = |q: &Tensor, k: &Tensor, v: &Tensor| {
            Tensor::scaled_dot_product_attention(q, k, v, None::<&Tensor>, 0.0, false, None, false)
        };
        let flash = errors_against_f64(sdpa, &qkv, bf16, &g);
        let ours = errors_against_f64(|q, k, v| attend(q, k, v).unwrap(), &qkv, bf16, &g);
        for (name, (o, f)) in ["out", "dq", "dk", "dv"]
            .iter()
            .zip(ours.iter().zip(&flash))
        {
            // bf16 logits would make these about twice the flash kernel's.
            assert!(*o < 1.25 * f, "{name}: explicit {o:.2e} vs flash {f:.2e}");
        }
    }

    #[test]
    fn under_cpu_autocast_the_logits_of_fp32_qk_are_not_rounded_to_bf16() {
        use flowscale_torch_ext::autocast::with_autocast;
        let (qkv, g) = short_sequence_inputs(24);
        // A QK-normed block under autocast: q and k fp32, v from a bf16 product.
        let kinds = [Kind::Float, Kind::Float, Kind::BFloat16];
        let mixed = errors_against_f64(
            |q, k, v| {
                let out = with_autocast(Device::Cpu, Kind::BFloat16, || attend(q, k, v).unwrap());
                out.unwrap()
            },
            &qkv,
            kinds,
            &g,
        );
        let all_bf16 = errors_against_f64(
            |q, k, v| attend(q, k, v).unwrap(),
            &qkv,
            [Kind::BFloat16; 3],
            &g,
        );
        // fp32 q and k lose nothing to input rounding, so with fp32 logits the error is below
        // the all-bf16 one; logits rounded to bf16 would put it above.
        for (name, (m, b)) in ["out", "dq", "dk", "dv"]
            .iter()
            .zip(mixed.iter().zip(&all_bf16))
        {
            assert!(m < b, "{name}: fp32 q/k {m:.2e} vs bf16 {b:.2e}");
        }
    }

    #[test]
    fn the_explicit_form_serves_only_short_bf16_sequences_on_the_cpu() {
        let t = |n: i64, kind: Kind| Tensor::zeros([1, 2, n, 8], (kind, Device::Cpu));
        let max = CPU_BF16_EXPLICIT_MAX_TOKENS;
        let (bf, f32) = (Kind::BFloat16, Kind::Float);
        assert!(explicit_form_is_faster(
            &t(max, bf),
            &t(max, bf),
            &t(max, bf)
        ));
        assert!(explicit_form_is_faster(&t(4, f32), &t(4, f32), &t(4, bf)));
        assert!(!explicit_form_is_faster(&t(4, f32), &t(4, f32), &t(4, f32)));
        assert!(!explicit_form_is_faster(
            &t(max + 1, bf),
            &t(4, bf),
            &t(4, bf)
        ));
        assert!(!explicit_form_is_faster(
            &t(4, bf),
            &t(max + 1, bf),
            &t(max + 1, bf)
        ));
    }
}
