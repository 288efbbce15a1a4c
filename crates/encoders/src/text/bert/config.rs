//! `BertConfig`: the fields of a Hugging Face BERT `config.json` that the encoder uses.

use crate::error::{EncoderError, Result};
use crate::nn::Activation;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BertConfig {
    pub vocab_size: i64,
    pub hidden_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    pub intermediate_size: i64,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    pub max_position_embeddings: i64,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: i64,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_position_type")]
    pub position_embedding_type: String,
}

fn default_act() -> String {
    "gelu".into()
}
fn default_type_vocab() -> i64 {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_position_type() -> String {
    "absolute".into()
}

impl BertConfig {
    /// Checks what the encoder supports; `path` names the config file in errors.
    pub fn validate(&self, path: &Path) -> Result<Activation> {
        if self.position_embedding_type != "absolute" {
            return Err(EncoderError::format(
                path,
                format!(
                    "position_embedding_type {:?} is not supported (only \"absolute\")",
                    self.position_embedding_type
                ),
            ));
        }
        if self.hidden_size % self.num_attention_heads != 0 {
            return Err(EncoderError::format(
                path,
                format!(
                    "hidden_size {} is not a multiple of num_attention_heads {}",
                    self.hidden_size, self.num_attention_heads
                ),
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
