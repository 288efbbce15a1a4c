//! BERT encoder (Hugging Face `BertModel` keys, without the pooler): absolute position and
//! token-type embeddings, post-norm transformer layers.

use super::config::BertConfig;
use crate::error::{EncoderError, Result};
use crate::nn::{
    key_mask_bias, merge_heads, split_heads, Activation, Embedding, LayerNorm, Linear,
};
use std::path::Path;
use tch::{nn, Kind, Tensor};

/// Checkpoint keys that are not variables here: the stored `position_ids` buffer (recomputed)
/// and `BertModel`'s pooler, which sentence embeddings do not use.
pub const IGNORED_KEYS: &[&str] = &[
    "embeddings.position_ids",
    "pooler.dense.weight",
    "pooler.dense.bias",
];

#[derive(Debug)]
struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    out_norm: LayerNorm,
}

impl Layer {
    fn new(p: &nn::Path, c: &BertConfig) -> Result<Self> {
        let h = c.hidden_size;
        let att = p / "attention";
        let sa = &att / "self";
        Ok(Layer {
            query: Linear::new(&(&sa / "query"), h, h, true)?,
            key: Linear::new(&(&sa / "key"), h, h, true)?,
            value: Linear::new(&(&sa / "value"), h, h, true)?,
            attn_out: Linear::new(&(&att / "output" / "dense"), h, h, true)?,
            attn_norm: LayerNorm::new(&(&att / "output" / "LayerNorm"), h, c.layer_norm_eps)?,
            intermediate: Linear::new(
                &(p / "intermediate" / "dense"),
                h,
                c.intermediate_size,
                true,
            )?,
            output: Linear::new(&(p / "output" / "dense"), c.intermediate_size, h, true)?,
            out_norm: LayerNorm::new(&(p / "output" / "LayerNorm"), h, c.layer_norm_eps)?,
        })
    }

    fn forward(&self, x: &Tensor, bias: &Tensor, heads: i64, act: Activation) -> Result<Tensor> {
        let q = split_heads(&self.query.forward(x)?, heads)?;
        let k = split_heads(&self.key.forward(x)?, heads)?;
        let v = split_heads(&self.value.forward(x)?, heads)?;
        let a = Tensor::f_scaled_dot_product_attention(
            &q,
            &k,
            &v,
            Some(bias),
            0.0,
            false,
            None,
            false,
        )?;
        let a = self.attn_out.forward(&merge_heads(&a)?)?;
        let x = self.attn_norm.forward(&x.f_add(&a)?)?;
        let h = act.apply(&self.intermediate.forward(&x)?)?;
        self.out_norm.forward(&x.f_add(&self.output.forward(&h)?)?)
    }
}

/// A BERT encoder; parameters live at Hugging Face `BertModel` keys under the given path.
#[derive(Debug)]
pub struct Bert {
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    emb_norm: LayerNorm,
    layers: Vec<Layer>,
    heads: i64,
    max_positions: i64,
    act: Activation,
}

impl Bert {
    pub fn new(p: &nn::Path, c: &BertConfig, config_path: &Path) -> Result<Self> {
        let act = c.validate(config_path)?;
        let e = p / "embeddings";
        let h = c.hidden_size;
        let layers = (0..c.num_hidden_layers)
            .map(|i| Layer::new(&(p / "encoder" / "layer" / i), c))
            .collect::<Result<Vec<_>>>()?;
        Ok(Bert {
            word: Embedding::new(&(&e / "word_embeddings"), c.vocab_size, h)?,
            position: Embedding::new(&(&e / "position_embeddings"), c.max_position_embeddings, h)?,
            token_type: Embedding::new(&(&e / "token_type_embeddings"), c.type_vocab_size, h)?,
            emb_norm: LayerNorm::new(&(&e / "LayerNorm"), h, c.layer_norm_eps)?,
            layers,
            heads: c.num_attention_heads,
            max_positions: c.max_position_embeddings,
            act,
        })
    }

    /// Last hidden states `[B, L, H]` of i64 `ids [B, L]` with `mask [B, L]` (1 token, 0 padding);
    /// all token types are 0.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let s = ids.size();
        if s.len() != 2 || mask.size() != s {
            return Err(EncoderError::Input(format!(
                "BERT takes ids and mask of the same shape [B, L], got {:?} and {:?}",
                s,
                mask.size()
            )));
        }
        if s[1] > self.max_positions {
            return Err(EncoderError::Input(format!(
                "sequence length {} exceeds max_position_embeddings {}",
                s[1], self.max_positions
            )));
        }
        let positions = Tensor::f_arange(s[1], (Kind::Int64, ids.device()))?;
        let types = ids.f_zeros_like()?;
        let x = self
            .word
            .forward(ids)?
            .f_add(&self.position.forward(&positions)?)?
            .f_add(&self.token_type.forward(&types)?)?;
        let mut x = self.emb_norm.forward(&x)?;
        let bias = key_mask_bias(mask, x.kind())?;
        for layer in &self.layers {
            x = layer.forward(&x, &bias, self.heads, self.act)?;
        }
        Ok(x)
    }
}
