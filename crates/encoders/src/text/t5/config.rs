//! `T5Config`: the fields of a Hugging Face T5 `config.json` the encoder uses.

use crate::error::{EncoderError, Result};
use crate::nn::Activation;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct T5Config {
    pub vocab_size: i64,
    pub d_model: i64,
    pub d_kv: i64,
    pub d_ff: i64,
    pub num_layers: i64,
    pub num_heads: i64,
    #[serde(default = "default_buckets")]
    pub relative_attention_num_buckets: i64,
    #[serde(default = "default_distance")]
    pub relative_attention_max_distance: i64,
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    /// `"gated-gelu"` (T5 v1.1), `"relu"` (T5 v1.0), or `"[gated-]<act>"`.
    #[serde(default = "default_ff")]
    pub feed_forward_proj: String,
}

fn default_buckets() -> i64 {
    32
}
fn default_distance() -> i64 {
    128
}
fn default_eps() -> f64 {
    1e-6
}
fn default_ff() -> String {
    "relu".into()
}

impl T5Config {
    /// T5-v1.1-XXL's encoder (SD3's `text_encoder_3`).
    pub fn t5_v1_1_xxl() -> Self {
        T5Config {
            vocab_size: 32128,
            d_model: 4096,
            d_kv: 64,
            d_ff: 10240,
            num_layers: 24,
            num_heads: 64,
            relative_attention_num_buckets: 32,
            relative_attention_max_distance: 128,
            layer_norm_epsilon: 1e-6,
            feed_forward_proj: "gated-gelu".into(),
        }
    }

    /// Whether the feed-forward is gated, and its activation, as Hugging Face resolves
    /// `feed_forward_proj` (`gated-gelu` means the tanh GELU, `gelu_new`).
    pub fn feed_forward(&self, path: &Path) -> Result<(bool, Activation)> {
        let f = self.feed_forward_proj.as_str();
        let (gated, act) = match f.strip_prefix("gated-") {
            Some(a) => (true, a),
            None => (false, f),
        };
        let act = if act == "gelu" && gated {
            "gelu_new"
        } else {
            act
        };
        let act = Activation::from_hf(act).ok_or_else(|| {
            EncoderError::format(path, format!("feed_forward_proj {f:?} is not supported"))
        })?;
        Ok((gated, act))
    }
}
