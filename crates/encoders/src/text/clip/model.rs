//! The CLIP text transformer with its projection, at Hugging Face
//! `CLIPTextModelWithProjection` keys (`text_model.*`, `text_projection.weight`): pre-norm causal
//! layers, a final LayerNorm, pooling at the end token.

use super::config::ClipTextConfig;
use crate::clip::layer::EncoderLayer;
use crate::error::{EncoderError, Result};
use crate::nn::{Activation, Embedding, LayerNorm, Linear};
use crate::text::frozen::{load_folder, Frozen};
use std::path::Path;
use tch::{nn, Kind, Tensor};

/// Checkpoint keys that Hugging Face stores but the model recomputes.
pub const IGNORED_KEYS: &[&str] = &["text_model.embeddings.position_ids"];

/// Outputs of the CLIP text encoder.
#[derive(Debug)]
pub struct ClipTextOutput {
    /// Hidden states after the penultimate layer, without the final norm `[B, L, H]`
    /// (Hugging Face `hidden_states[-2]`; SD3's context).
    pub penultimate: Tensor,
    /// Final-norm states `[B, L, H]` (`last_hidden_state`).
    pub last: Tensor,
    /// Final-norm state at the end token `[B, H]` (`pooler_output`).
    pub pooled: Tensor,
    /// `pooled` through `text_projection` `[B, P]` (`text_embeds`).
    pub projected: Tensor,
}

/// CLIP text transformer + projection.
#[derive(Debug)]
pub struct ClipText {
    token: Embedding,
    position: Embedding,
    layers: Vec<EncoderLayer>,
    final_norm: LayerNorm,
    projection: Linear,
    config: ClipTextConfig,
    act: Activation,
}

impl ClipText {
    /// Builds the model under `p` (the root of a `CLIPTextModelWithProjection` state).
    pub fn new(p: &nn::Path, c: &ClipTextConfig, config_path: &Path) -> Result<Self> {
        let act = c.validate(config_path)?;
        let tm = p / "text_model";
        let e = &tm / "embeddings";
        let layers = (0..c.num_hidden_layers)
            .map(|i| {
                EncoderLayer::new(
                    &(&tm / "encoder" / "layers" / i),
                    c.hidden_size,
                    c.intermediate_size,
                    c.layer_norm_eps,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ClipText {
            token: Embedding::new(&(&e / "token_embedding"), c.vocab_size, c.hidden_size)?,
            position: Embedding::new(
                &(&e / "position_embedding"),
                c.max_position_embeddings,
                c.hidden_size,
            )?,
            layers,
            final_norm: LayerNorm::new(
                &(&tm / "final_layer_norm"),
                c.hidden_size,
                c.layer_norm_eps,
            )?,
            projection: Linear::new(
                &(p / "text_projection"),
                c.hidden_size,
                c.projection_dim,
                false,
            )?,
            config: c.clone(),
            act,
        })
    }

    /// Loads a `CLIPTextModelWithProjection` folder (`config.json` + `model.safetensors`,
    /// sharded or not) with weights in `kind` on `device`.
    pub fn load(dir: &Path, kind: Kind, device: tch::Device) -> Result<Frozen<ClipText>> {
        let (_, frozen) = load_folder::<ClipTextConfig, _>(
            dir,
            kind,
            device,
            IGNORED_KEYS,
            ClipText::new,
            |_| {},
        )?;
        Ok(frozen)
    }

    pub fn config(&self) -> &ClipTextConfig {
        &self.config
    }

    /// Positions of the end token per row `[B]`: arg-max of the ids when `eos_token_id` is 2
    /// (Hugging Face's legacy rule), else the first position holding `eos_token_id`.
    pub fn end_positions(&self, ids: &Tensor) -> Result<Tensor> {
        if self.config.eos_token_id == 2 {
            Ok(ids.f_argmax(-1, false)?)
        } else {
            Ok(ids
                .f_eq(self.config.eos_token_id)?
                .f_to_kind(Kind::Int)?
                .f_argmax(-1, false)?)
        }
    }

    /// Encodes i64 ids `[B, L]` (L at most `max_position_embeddings`); attention is causal only,
    /// as SD3 runs CLIP (padding after the end token does not reach earlier positions).
    pub fn forward(&self, ids: &Tensor) -> Result<ClipTextOutput> {
        let s = ids.size();
        if s.len() != 2 || s[1] > self.config.max_position_embeddings {
            return Err(EncoderError::Input(format!(
                "CLIP takes ids [B, L] with L <= {}, got {:?}",
                self.config.max_position_embeddings, s
            )));
        }
        let positions = Tensor::f_arange(s[1], (Kind::Int64, ids.device()))?;
        let mut x = self
            .token
            .forward(ids)?
            .f_add(&self.position.forward(&positions)?)?;
        let heads = self.config.num_attention_heads;
        let n = self.layers.len();
        let mut penultimate = None;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(&x, heads, self.act, true)?;
            if i + 2 == n {
                penultimate = Some(x.shallow_clone());
            }
        }
        let penultimate = penultimate.ok_or_else(|| {
            EncoderError::Input("CLIP needs at least 2 layers for penultimate states".into())
        })?;
        let last = self.final_norm.forward(&x)?;
        let rows = Tensor::f_arange(s[0], (Kind::Int64, ids.device()))?;
        let ends = self.end_positions(ids)?.f_to_kind(Kind::Int64)?;
        let pooled = last.f_index(&[Some(rows), Some(ends)])?;
        let projected = self.projection.forward(&pooled)?;
        Ok(ClipTextOutput {
            penultimate,
            last,
            pooled,
            projected,
        })
    }
}
