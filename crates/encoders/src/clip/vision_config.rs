//! `CLIPVisionConfig`: the fields of a Hugging Face CLIP `vision_config` the vision tower uses.

use crate::error::{EncoderError, Result};
use crate::nn::Activation;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipVisionConfig {
    pub hidden_size: i64,
    pub intermediate_size: i64,
    /// Width of `visual_projection` in `CLIPVisionModelWithProjection`; a `CLIPModel` folder
    /// overrides it with its top-level `projection_dim`.
    #[serde(default = "crate::clip::defaults::projection_dim")]
    pub projection_dim: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    #[serde(default = "default_channels")]
    pub num_channels: i64,
    pub image_size: i64,
    pub patch_size: i64,
    #[serde(default = "crate::clip::defaults::hidden_act")]
    pub hidden_act: String,
    #[serde(default = "crate::clip::defaults::layer_norm_eps")]
    pub layer_norm_eps: f64,
}

fn default_channels() -> i64 {
    3
}
impl ClipVisionConfig {
    /// CLIP ViT-L/14's vision tower (`openai/clip-vit-large-patch14`).
    pub fn clip_l14() -> Self {
        ClipVisionConfig {
            hidden_size: 1024,
            intermediate_size: 4096,
            projection_dim: 768,
            num_hidden_layers: 24,
            num_attention_heads: 16,
            num_channels: 3,
            image_size: 224,
            patch_size: 14,
            hidden_act: "quick_gelu".into(),
            layer_norm_eps: 1e-5,
        }
    }

    /// Patches per side.
    pub fn grid(&self) -> i64 {
        self.image_size / self.patch_size
    }

    /// Checks the shapes fit together and parses the activation; `path` names the config.
    pub fn validate(&self, path: &Path) -> Result<Activation> {
        if self.hidden_size % self.num_attention_heads != 0 {
            return Err(EncoderError::format(
                path,
                format!(
                    "vision_config: hidden_size {} is not a multiple of num_attention_heads {}",
                    self.hidden_size, self.num_attention_heads
                ),
            ));
        }
        if self.patch_size <= 0 || self.image_size % self.patch_size != 0 {
            return Err(EncoderError::format(
                path,
                format!(
                    "vision_config: image_size {} is not a multiple of patch_size {}",
                    self.image_size, self.patch_size
                ),
            ));
        }
        Activation::from_hf(&self.hidden_act).ok_or_else(|| {
            EncoderError::format(
                path,
                format!(
                    "vision_config: hidden_act {:?} is not supported",
                    self.hidden_act
                ),
            )
        })
    }
}
