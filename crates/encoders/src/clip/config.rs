//! `CLIPConfig`: a Hugging Face `CLIPModel` `config.json` (text and vision sub-configs, the
//! shared projection width, the initial logit scale).

use super::vision_config::ClipVisionConfig;
use crate::text::clip::ClipTextConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipModelConfig {
    pub text_config: ClipTextConfig,
    pub vision_config: ClipVisionConfig,
    /// Width of both projections. `CLIPModel` builds `text_projection` and `visual_projection`
    /// with this value; the sub-configs' own `projection_dim` (often a stale default of 512)
    /// does not apply.
    #[serde(default = "crate::clip::defaults::projection_dim")]
    pub projection_dim: i64,
}

impl ClipModelConfig {
    /// The text config with the model's projection width.
    pub fn text(&self) -> ClipTextConfig {
        ClipTextConfig {
            projection_dim: self.projection_dim,
            ..self.text_config.clone()
        }
    }

    /// The vision config with the model's projection width.
    pub fn vision(&self) -> ClipVisionConfig {
        ClipVisionConfig {
            projection_dim: self.projection_dim,
            ..self.vision_config.clone()
        }
    }
}
