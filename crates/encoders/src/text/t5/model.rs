//! The T5 encoder at Hugging Face `T5EncoderModel` keys (`shared.weight`, `encoder.block.*`,
//! `encoder.final_layer_norm.weight`): RMS-style LayerNorm without bias, unscaled attention with
//! a bucketed relative position bias computed by block 0 and shared by all blocks, and the
//! (gated) feed-forward.

use super::config::T5Config;
use crate::error::{EncoderError, Result};
use crate::nn::{key_mask_bias, merge_heads, split_heads, Activation, Embedding, Linear};
use crate::text::frozen::{load_folder, Frozen};
use std::path::Path;
use tch::nn::Init;
use tch::{nn, Kind, Tensor};

/// Keys that may be in a checkpoint and are not separate variables here: the encoder's token
/// table is tied to `shared.weight` (some exports store it twice).
pub const IGNORED_KEYS: &[&str] = &["encoder.embed_tokens.weight"];

/// T5's LayerNorm: `x / rms(x) * weight`, statistics in fp32.
#[derive(Debug)]
struct T5Norm {
    weight: Tensor,
    eps: f64,
}

impl T5Norm {
    fn new(p: &nn::Path, dim: i64, eps: f64) -> Result<Self> {
        Ok(T5Norm {
            weight: p.f_var("weight", &[dim], Init::Const(1.0))?,
            eps,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let stat = match x.kind() {
            Kind::Double => Kind::Double,
            _ => Kind::Float,
        };
        let x32 = x.f_to_kind(stat)?;
        let var = x32
            .f_square()?
            .f_mean_dim(Some([-1i64].as_slice()), true, stat)?;
        let normed = x32.f_mul(&var.f_add_scalar(self.eps)?.f_rsqrt()?)?;
        Ok(normed.f_to_kind(self.weight.kind())?.f_mul(&self.weight)?)
    }
}

#[derive(Debug)]
struct Block {
    attn_norm: T5Norm,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    ff_norm: T5Norm,
    wi_0: Linear,
    wi_1: Option<Linear>,
    wo: Linear,
}

impl Block {
    fn new(p: &nn::Path, c: &T5Config, gated: bool) -> Result<Self> {
        let inner = c.num_heads * c.d_kv;
        let l0 = p / "layer" / 0;
        let sa = &l0 / "SelfAttention";
        let l1 = p / "layer" / 1;
        let ff = &l1 / "DenseReluDense";
        let (wi_0, wi_1) = if gated {
            (
                Linear::new(&(&ff / "wi_0"), c.d_model, c.d_ff, false)?,
                Some(Linear::new(&(&ff / "wi_1"), c.d_model, c.d_ff, false)?),
            )
        } else {
            (Linear::new(&(&ff / "wi"), c.d_model, c.d_ff, false)?, None)
        };
        Ok(Block {
            attn_norm: T5Norm::new(&(&l0 / "layer_norm"), c.d_model, c.layer_norm_epsilon)?,
            q: Linear::new(&(&sa / "q"), c.d_model, inner, false)?,
            k: Linear::new(&(&sa / "k"), c.d_model, inner, false)?,
            v: Linear::new(&(&sa / "v"), c.d_model, inner, false)?,
            o: Linear::new(&(&sa / "o"), inner, c.d_model, false)?,
            ff_norm: T5Norm::new(&(&l1 / "layer_norm"), c.d_model, c.layer_norm_epsilon)?,
            wi_0,
            wi_1,
            wo: Linear::new(&(&ff / "wo"), c.d_ff, c.d_model, false)?,
        })
    }

    fn forward(&self, x: &Tensor, bias: &Tensor, heads: i64, act: Activation) -> Result<Tensor> {
        let h = self.attn_norm.forward(x)?;
        let q = split_heads(&self.q.forward(&h)?, heads)?;
        let k = split_heads(&self.k.forward(&h)?, heads)?;
        let v = split_heads(&self.v.forward(&h)?, heads)?;
        // T5 does not scale the scores.
        let a =
            Tensor::f_scaled_dot_product_attention(&q, &k, &v, Some(bias), 0.0, false, 1.0, false)?;
        let x = x.f_add(&self.o.forward(&merge_heads(&a)?)?)?;
        let h = self.ff_norm.forward(&x)?;
        let mut g = act.apply(&self.wi_0.forward(&h)?)?;
        if let Some(wi_1) = &self.wi_1 {
            g = g.f_mul(&wi_1.forward(&h)?)?;
        }
        Ok(x.f_add(&self.wo.forward(&g)?)?)
    }
}

/// Bidirectional relative position buckets `[Lq, Lk]` for `relative = key - query`: half the
/// buckets for each sign, the first half of those exact, the rest logarithmic up to
/// `max_distance`.
pub fn relative_position_buckets(
    len_q: i64,
    len_k: i64,
    num_buckets: i64,
    max_distance: i64,
    device: tch::Device,
) -> Result<Tensor> {
    let half = num_buckets / 2;
    let max_exact = half / 2;
    let q = Tensor::f_arange(len_q, (Kind::Int64, device))?.f_unsqueeze(1)?;
    let k = Tensor::f_arange(len_k, (Kind::Int64, device))?.f_unsqueeze(0)?;
    let rel = k.f_sub(&q)?;
    let sign_offset = rel.f_gt(0)?.f_to_kind(Kind::Int64)?.f_mul_scalar(half)?;
    let n = rel.f_abs()?;
    let large = n
        .f_to_kind(Kind::Float)?
        .f_div_scalar(max_exact as f64)?
        .f_log()?
        .f_div_scalar((max_distance as f64 / max_exact as f64).ln())?
        .f_mul_scalar((half - max_exact) as f64)?
        .f_to_kind(Kind::Int64)?
        .f_add_scalar(max_exact)?
        .f_clamp_max(half - 1)?;
    let small = n.f_lt(max_exact)?;
    Ok(sign_offset.f_add(&n.f_where_self(&small, &large)?)?)
}

/// The T5 encoder stack.
#[derive(Debug)]
pub struct T5Encoder {
    shared: Embedding,
    relative_bias: Embedding,
    blocks: Vec<Block>,
    final_norm: T5Norm,
    config: T5Config,
    act: Activation,
}

impl T5Encoder {
    /// Builds the model under `p` (the root of a `T5EncoderModel` state).
    pub fn new(p: &nn::Path, c: &T5Config, config_path: &Path) -> Result<Self> {
        let (gated, act) = c.feed_forward(config_path)?;
        let enc = p / "encoder";
        let blocks = (0..c.num_layers)
            .map(|i| Block::new(&(&enc / "block" / i), c, gated))
            .collect::<Result<Vec<_>>>()?;
        let bias_path =
            &enc / "block" / 0 / "layer" / 0 / "SelfAttention" / "relative_attention_bias";
        Ok(T5Encoder {
            shared: Embedding::new(&(p / "shared"), c.vocab_size, c.d_model)?,
            relative_bias: Embedding::new(
                &bias_path,
                c.relative_attention_num_buckets,
                c.num_heads,
            )?,
            blocks,
            final_norm: T5Norm::new(
                &(&enc / "final_layer_norm"),
                c.d_model,
                c.layer_norm_epsilon,
            )?,
            config: c.clone(),
            act,
        })
    }

    /// Loads a `T5EncoderModel` folder (`config.json` + `model.safetensors`, sharded or not)
    /// with weights in `kind` on `device`.
    pub fn load(dir: &Path, kind: Kind, device: tch::Device) -> Result<Frozen<T5Encoder>> {
        let (_, frozen) =
            load_folder::<T5Config, _>(dir, kind, device, IGNORED_KEYS, T5Encoder::new, |state| {
                // Exports that keep only the encoder's copy of the tied table.
                if !state.contains_key("shared.weight") {
                    if let Some(t) = state.remove("encoder.embed_tokens.weight") {
                        state.insert("shared.weight".into(), t);
                    }
                }
            })?;
        Ok(frozen)
    }

    pub fn config(&self) -> &T5Config {
        &self.config
    }

    /// Final states `[B, L, D]` of i64 ids `[B, L]`; `mask [B, L]` (1 token, 0 padding) hides
    /// padded keys. SD3 runs T5 without a mask.
    pub fn forward(&self, ids: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let s = ids.size();
        if s.len() != 2 {
            return Err(EncoderError::Input(format!(
                "T5 takes ids [B, L], got {s:?}"
            )));
        }
        let mut x = self.shared.forward(ids)?;
        let buckets = relative_position_buckets(
            s[1],
            s[1],
            self.config.relative_attention_num_buckets,
            self.config.relative_attention_max_distance,
            ids.device(),
        )?;
        let mut bias = self
            .relative_bias
            .forward(&buckets)?
            .f_permute([2, 0, 1].as_slice())?
            .f_unsqueeze(0)?
            .f_to_kind(x.kind())?;
        if let Some(m) = mask {
            if m.size() != s {
                return Err(EncoderError::Input(format!(
                    "T5 mask {:?} does not match ids {s:?}",
                    m.size()
                )));
            }
            bias = bias.f_add(&key_mask_bias(m, x.kind())?)?;
        }
        for block in &self.blocks {
            x = block.forward(&x, &bias, self.config.num_heads, self.act)?;
        }
        self.final_norm.forward(&x)
    }
}
