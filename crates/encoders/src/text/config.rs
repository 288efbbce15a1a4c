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
//!
//! The file speaks flowscale's config dialect ([`flowscale_core::config`]): unknown keys are
//! refused, `--set key.path=value` overrides a key, and every bad value is reported at once with
//! its dotted key.

use crate::error::Result;
use crate::text::clip::ClipPadding;
use flowscale_core::config::{self, Validate, Validator};
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

impl Validate for TextEncoderConfig {
    fn validate(&self, v: &mut Validator) {
        let missing = |v: &mut Validator, section: &str| {
            v.fail(
                section,
                format!("encoder = {section:?} needs a [{section}] section"),
            )
        };
        match self.encoder {
            EncoderKind::Minilm => match &self.minilm {
                Some(m) => v.section("minilm", m),
                None => missing(v, "minilm"),
            },
            EncoderKind::Sd3 => match &self.sd3 {
                Some(s) => v.section("sd3", s),
                None => missing(v, "sd3"),
            },
        }
    }
}

impl Validate for MiniLmSection {
    fn validate(&self, v: &mut Validator) {
        v.count_at_least("tokens", self.tokens as u64, 1);
    }
}

impl Validate for Sd3Section {
    fn validate(&self, v: &mut Validator) {
        if let Some(t5) = &self.t5 {
            v.section("t5", t5);
        }
    }
}

impl Validate for T5Section {
    fn validate(&self, v: &mut Validator) {
        v.count_at_least("tokens", self.tokens as u64, 1);
    }
}

impl TextEncoderConfig {
    /// Parses and validates TOML; errors name `path`, every bad key and what was expected.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self> {
        Ok(config::load_str(text, path, &[])?)
    }

    /// Reads, parses and validates a TOML file.
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_with(path, &[])
    }

    /// [`TextEncoderConfig::load`] with `--set key.path=value` overrides applied in order.
    pub fn load_with(path: &Path, overrides: &[String]) -> Result<Self> {
        Ok(config::load(path, overrides)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::EncoderError;
    use flowscale_core::config::ConfigError;

    #[test]
    fn a_bad_value_names_its_dotted_key() {
        let text =
            "encoder = \"sd3\"\n[sd3.t5]\npath = \"t5\"\ntokenizer = \"t.json\"\ntokens = 0\n";
        let err = TextEncoderConfig::from_toml(text, Path::new("t.toml")).unwrap_err();
        let EncoderError::Config(ConfigError::Invalid { problems, .. }) = &err else {
            panic!("not a config error: {err:?}");
        };
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key, "sd3.t5.tokens");
        let msg = err.to_string();
        assert!(
            msg.contains("t.toml") && msg.contains("key `sd3.t5.tokens`"),
            "{msg}"
        );
    }

    #[test]
    fn set_overrides_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, "encoder = \"minilm\"\n[minilm]\npath = \"m\"\n").unwrap();
        assert_eq!(
            TextEncoderConfig::load(&path)
                .unwrap()
                .minilm
                .unwrap()
                .tokens,
            77
        );
        let set = |arg: &str| TextEncoderConfig::load_with(&path, &[arg.to_owned()]);
        let c = set("minilm.tokens=12").unwrap();
        assert_eq!(c.minilm.unwrap().tokens, 12);
        assert_eq!(set("dtype=bf16").unwrap().dtype, WeightDtype::Bf16);
        let msg = set("minilm.tokens=0").unwrap_err().to_string();
        assert!(
            msg.contains("key `minilm.tokens`") && msg.contains("--set"),
            "{msg}"
        );
    }
}
