//! The CLIP vision transformer with its projection, at Hugging Face keys
//! (`vision_model.*`, `visual_projection.weight`, as in `CLIPVisionModelWithProjection` and
//! `CLIPModel`): a patch-embedding convolution, a class token, learned positions, `pre_layrnorm`
//! (Hugging Face's spelling), non-causal encoder layers, `post_layernorm` on the class token.

use super::layer::EncoderLayer;
use super::vision_config::ClipVisionConfig;
use crate::error::{EncoderError, Result};
use crate::nn::{Activation, Embedding, LayerNorm, Linear};
use crate::text::frozen::{load_folder, Frozen};
use std::path::Path;
use tch::nn::Init;
use tch::{nn, Device, Kind, Tensor};

/// Checkpoint keys that Hugging Face may store but the model recomputes.
pub const IGNORED_KEYS: &[&str] = &["vision_model.embeddings.position_ids"];

/// Outputs of the CLIP vision tower.
#[derive(Debug)]
pub struct ClipVisionOutput {
    /// Encoder output before `post_layernorm` `[B, 1 + patches, H]` (`last_hidden_state`).
    pub last: Tensor,
    /// `post_layernorm` of the class token `[B, H]` (`pooler_output`).
    pub pooled: Tensor,
    /// `pooled` through `visual_projection` `[B, P]` (`image_embeds`).
    pub projected: Tensor,
}

/// CLIP vision transformer + projection.
#[derive(Debug)]
pub struct ClipVision {
    patch_weight: Tensor,
    class_embedding: Tensor,
    position: Embedding,
    pre_norm: LayerNorm,
    layers: Vec<EncoderLayer>,
    post_norm: LayerNorm,
    projection: Linear,
    config: ClipVisionConfig,
    act: Activation,
}

impl ClipVision {
    /// Builds the tower under `p` (the root of a `CLIPModel` or
    /// `CLIPVisionModelWithProjection` state); `config_path` names the config in errors.
    pub fn new(p: &nn::Path, c: &ClipVisionConfig, config_path: &Path) -> Result<Self> {
        let act = c.validate(config_path)?;
        let vm = p / "vision_model";
        let e = &vm / "embeddings";
        let h = c.hidden_size;
        let layers = (0..c.num_hidden_layers)
            .map(|i| {
                EncoderLayer::new(
                    &(&vm / "encoder" / "layers" / i),
                    h,
                    c.intermediate_size,
                    c.layer_norm_eps,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let positions = c.grid() * c.grid() + 1;
        Ok(ClipVision {
            patch_weight: (&e / "patch_embedding").f_var(
                "weight",
                &[h, c.num_channels, c.patch_size, c.patch_size],
                Init::Const(0.0),
            )?,
            class_embedding: e.f_var("class_embedding", &[h], Init::Const(0.0))?,
            position: Embedding::new(&(&e / "position_embedding"), positions, h)?,
            pre_norm: LayerNorm::new(&(&vm / "pre_layrnorm"), h, c.layer_norm_eps)?,
            layers,
            post_norm: LayerNorm::new(&(&vm / "post_layernorm"), h, c.layer_norm_eps)?,
            projection: Linear::new(&(p / "visual_projection"), h, c.projection_dim, false)?,
            config: c.clone(),
            act,
        })
    }

    /// Loads a `CLIPVisionModelWithProjection` folder (`config.json` with the vision fields,
    /// `model.safetensors`, sharded or not) with weights in `kind` on `device`; errors name every
    /// missing, unexpected and mis-shaped key.
    pub fn load(dir: &Path, kind: Kind, device: Device) -> Result<Frozen<ClipVision>> {
        let (_, frozen) = load_folder::<ClipVisionConfig, _>(
            dir,
            kind,
            device,
            IGNORED_KEYS,
            ClipVision::new,
            |_| {},
        )?;
        Ok(frozen)
    }

    pub fn config(&self) -> &ClipVisionConfig {
        &self.config
    }

    /// Encodes preprocessed pixels `[B, C, S, S]` (S = `image_size`; see
    /// [`super::preprocess`]).
    pub fn forward(&self, pixels: &Tensor) -> Result<ClipVisionOutput> {
        let c = &self.config;
        let s = pixels.size();
        if s.len() != 4 || s[1] != c.num_channels || s[2] != c.image_size || s[3] != c.image_size {
            return Err(EncoderError::Input(format!(
                "CLIP vision takes pixels [B, {}, {}, {}], got {:?}",
                c.num_channels, c.image_size, c.image_size, s
            )));
        }
        let pixels = pixels.f_to_kind(self.patch_weight.kind())?;
        let patches = pixels
            .f_conv2d(
                &self.patch_weight,
                None::<&Tensor>,
                [c.patch_size, c.patch_size].as_slice(),
                [0i64, 0].as_slice(),
                [1i64, 1].as_slice(),
                1,
            )?
            .f_flatten(2, 3)?
            .f_transpose(1, 2)?;
        let class = self
            .class_embedding
            .f_view([1, 1, c.hidden_size].as_slice())?
            .f_expand([s[0], 1, c.hidden_size].as_slice(), false)?;
        let mut x = Tensor::f_cat(&[class, patches], 1)?.f_add(&self.position.weight)?;
        x = self.pre_norm.forward(&x)?;
        for layer in &self.layers {
            x = layer.forward(&x, c.num_attention_heads, self.act, false)?;
        }
        let pooled = self.post_norm.forward(&x.f_select(1, 0)?)?;
        let projected = self.projection.forward(&pooled)?;
        Ok(ClipVisionOutput {
            last: x,
            pooled,
            projected,
        })
    }
}
