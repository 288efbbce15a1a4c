//! `CLIPTextConfig`: the fields of a Hugging Face CLIP text `config.json` the encoder uses.

use crate::error::{EncoderError, Result};
use crate::nn::Activation;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipTextConfig {
    pub vocab_size: i64,
    pub hidden_size: i64,
    pub intermediate_size: i64,
    /// Width of `text_projection` (CLIPTextModelWithProjection).
    #[serde(default = "crate::clip::defaults::projection_dim")]
    pub projection_dim: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    #[serde(default = "default_positions")]
    pub max_position_embeddings: i64,
    #[serde(default = "crate::clip::defaults::hidden_act")]
    pub hidden_act: String,
    #[serde(default = "crate::clip::defaults::layer_norm_eps")]
    pub layer_norm_eps: f64,
    /// 2 selects the legacy pooling rule (the end token has the largest id: arg-max of the ids);
    /// any other value pools at the first occurrence of this id.
    #[serde(default = "default_eos")]
    pub eos_token_id: i64,
}

fn default_positions() -> i64 {
    77
}
fn default_eos() -> i64 {
    2
}

impl ClipTextConfig {
    /// CLIP-L/14's text tower (`openai/clip-vit-large-patch14`, SD3's `text_encoder`).
    pub fn clip_l14() -> Self {
        ClipTextConfig {
            vocab_size: 49408,
            hidden_size: 768,
            intermediate_size: 3072,
            projection_dim: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            max_position_embeddings: 77,
            hidden_act: "quick_gelu".into(),
            layer_norm_eps: 1e-5,
            eos_token_id: 2,
        }
    }

    /// OpenCLIP bigG/14's text tower in Hugging Face form (SD3's `text_encoder_2`).
    pub fn open_clip_big_g14() -> Self {
        ClipTextConfig {
            vocab_size: 49408,
            hidden_size: 1280,
            intermediate_size: 5120,
            projection_dim: 1280,
            num_hidden_layers: 32,
            num_attention_heads: 20,
            max_position_embeddings: 77,
            hidden_act: "gelu".into(),
            layer_norm_eps: 1e-5,
            eos_token_id: 2,
        }
    }

    pub fn validate(&self, path: &Path) -> Result<Activation> {
        if self.hidden_size % self.num_attention_heads != 0 {
            return Err(EncoderError::format(
                path,
                format!(
                    "hidden_size {} is not a multiple of num_attention_heads {}",
                    self.hidden_size, self.num_attention_heads
                ),
            ));
        }
        if self.num_hidden_layers < 2 {
            return Err(EncoderError::format(
                path,
                "num_hidden_layers must be at least 2 (the penultimate layer is an output)",
            ));
        }
        Activation::from_hf(&self.hidden_act).ok_or_else(|| {
            EncoderError::format(
                path,
                format!("hidden_act {:?} is not supported", self.hidden_act),
            )
        })
    }
}
