//! Text-encoder configs (TOML): which encoder turns prompts into conditioning, and where its
//! files are. Paths are relative to the current directory.
//!
//! ```toml
//! encoder = "minilm"          # or "sd3"
//! dtype = "fp32"              # weights: fp32, bf16, fp16
//! [minilm]
//! path = ".assets/all-minilm-l6-v2"
//! tokens = 77                 # context tokens (token states, zero after the text)
//! ```
//!
//! `encoder = "sd3"` reads `[sd3]` with optional `[sd3.clip_l]`, `[sd3.clip_g]`
//! (`path`, `vocab`, `padding = "end_token" | "zero"`, `project_pooled`) and `[sd3.t5]`
//! (`path`, `tokenizer`, `tokens`); an absent encoder contributes zeros.

use crate::error::{EncoderError, Result};
use crate::text::clip::ClipPadding;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EncoderKind {
    Minilm,
    Sd3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightDtype {
    #[default]
    Fp32,
    Bf16,
    Fp16,
}

impl WeightDtype {
    pub fn kind(self) -> tch::Kind {
        match self {
            WeightDtype::Fp32 => tch::Kind::Float,
            WeightDtype::Bf16 => tch::Kind::BFloat16,
            WeightDtype::Fp16 => tch::Kind::Half,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextEncoderConfig {
    pub encoder: EncoderKind,
    #[serde(default)]
    pub dtype: WeightDtype,
    pub minilm: Option<MiniLmSection>,
    pub sd3: Option<Sd3Section>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MiniLmSection {
    /// A sentence-transformers folder (all-MiniLM-L6-v2).
    pub path: PathBuf,
    /// Context tokens: the token states of each prompt, cut or zero-padded to this many.
    #[serde(default = "default_tokens")]
    pub tokens: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sd3Section {
    pub clip_l: Option<ClipSection>,
    pub clip_g: Option<ClipSection>,
    pub t5: Option<T5Section>,
    /// Width of the combined context (SD3: 4096).
    #[serde(default = "default_context_width")]
    pub context_width: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipSection {
    /// A `CLIPTextModelWithProjection` folder.
    pub path: PathBuf,
    /// `bpe_simple_vocab_16e6.txt.gz`.
    pub vocab: PathBuf,
    /// SD3: `end_token` for CLIP-L, `zero` for CLIP-G.
    pub padding: ClipPadding,
    /// Pool `text_embeds` (projected) instead of the final-norm end-token state. SD3's
    /// reference code projects CLIP-G only; diffusers' pipeline projects both.
    pub project_pooled: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct T5Section {
    /// A `T5EncoderModel` folder.
    pub path: PathBuf,
    /// The T5 `tokenizer.json`.
    pub tokenizer: PathBuf,
    #[serde(default = "default_tokens")]
    pub tokens: usize,
}

fn default_tokens() -> usize {
    77
}
fn default_context_width() -> i64 {
    4096
}

impl TextEncoderConfig {
    /// Parses TOML; errors name `path`, the key and what was expected.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self> {
        let cfg: TextEncoderConfig =
            toml::from_str(text).map_err(|e| EncoderError::format(path, e.to_string()))?;
        let missing = |section: &str| {
            EncoderError::format(
                path,
                format!("encoder = {:?} needs a [{section}] section", section),
            )
        };
        match cfg.encoder {
            EncoderKind::Minilm => {
                let m = cfg.minilm.as_ref().ok_or_else(|| missing("minilm"))?;
                if m.tokens == 0 {
                    return Err(EncoderError::format(
                        path,
                        "minilm.tokens must be at least 1",
                    ));
                }
            }
            EncoderKind::Sd3 => {
                let s = cfg.sd3.as_ref().ok_or_else(|| missing("sd3"))?;
                if s.t5.as_ref().is_some_and(|t| t.tokens == 0) {
                    return Err(EncoderError::format(
                        path,
                        "sd3.t5.tokens must be at least 1",
                    ));
                }
            }
        }
        Ok(cfg)
    }

    /// Reads and parses a TOML file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| EncoderError::io(path, e))?;
        Self::from_toml(&text, path)
    }
}
