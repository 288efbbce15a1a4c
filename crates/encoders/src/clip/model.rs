//! `CLIPModel`: the vision and text towers with their projections and `logit_scale`, loaded
//! from a Hugging Face folder with every key checked.

use super::config::ClipModelConfig;
use super::vision::{self, ClipVision};
use crate::error::Result;
use crate::text::clip::{model as text_model, ClipText};
use crate::text::frozen::{load_folder, Frozen};
use std::path::Path;
use tch::nn::Init;
use tch::{nn, Device, Kind, Tensor};

/// CLIP vision + text with projections into one embedding space.
#[derive(Debug)]
pub struct ClipModel {
    pub vision: ClipVision,
    pub text: ClipText,
    logit_scale: Tensor,
    config: ClipModelConfig,
}

impl ClipModel {
    /// Builds the model under `p` (the root of a `CLIPModel` state).
    pub fn new(p: &nn::Path, c: &ClipModelConfig, config_path: &Path) -> Result<Self> {
        Ok(ClipModel {
            vision: ClipVision::new(p, &c.vision(), config_path)?,
            text: ClipText::new(p, &c.text(), config_path)?,
            logit_scale: p.f_var("logit_scale", &[], Init::Const(0.0))?,
            config: c.clone(),
        })
    }

    /// Loads a `CLIPModel` folder (`config.json` + `model.safetensors`, sharded or not) with
    /// weights in `kind` on `device`; errors name every missing, unexpected and mis-shaped key.
    pub fn load(dir: &Path, kind: Kind, device: Device) -> Result<Frozen<ClipModel>> {
        let ignored: Vec<&str> = text_model::IGNORED_KEYS
            .iter()
            .chain(vision::IGNORED_KEYS)
            .copied()
            .collect();
        let (_, frozen) =
            load_folder::<ClipModelConfig, _>(dir, kind, device, &ignored, ClipModel::new, |_| {})?;
        Ok(frozen)
    }

    pub fn config(&self) -> &ClipModelConfig {
        &self.config
    }

    /// Image embeddings `[B, P]` of preprocessed pixels (`get_image_features`, not normalised).
    pub fn image_embeds(&self, pixels: &Tensor) -> Result<Tensor> {
        Ok(self.vision.forward(pixels)?.projected)
    }

    /// Text embeddings `[B, P]` of token ids (`get_text_features`, not normalised).
    pub fn text_embeds(&self, ids: &Tensor) -> Result<Tensor> {
        Ok(self.text.forward(ids)?.projected)
    }

    /// `exp(logit_scale)`, the temperature of CLIP's contrastive logits.
    pub fn logit_scale(&self) -> Result<f64> {
        Ok(self.logit_scale.f_exp()?.f_double_value(&[])?)
    }
}
