//! CLIP tokenisation to a fixed context: `<start_of_text>`, the BPE ids, `<end_of_text>`,
//! truncated to the context with the end token kept last, then padded. SD3 pads CLIP-L with the
//! end token and OpenCLIP bigG/14 with id 0 (`!`, open_clip's own padding).

use super::bpe::ClipBpe;
use crate::error::Result;
use crate::text::hf_tokenizer::TokenBatch;
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::Tensor;

/// What fills the positions after the end token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClipPadding {
    /// The end token (Hugging Face `openai/clip-vit-large-patch14`, SD3's CLIP-L).
    EndToken,
    /// Id 0 (open_clip, SD3's CLIP-G).
    Zero,
}

/// CLIP BPE with a context length and padding rule.
#[derive(Debug)]
pub struct ClipTokenizer {
    pub bpe: ClipBpe,
    pub context_length: usize,
    pub padding: ClipPadding,
}

impl ClipTokenizer {
    pub fn from_file(path: &Path, context_length: usize, padding: ClipPadding) -> Result<Self> {
        Ok(ClipTokenizer {
            bpe: ClipBpe::from_file(path)?,
            context_length,
            padding,
        })
    }

    /// Ids of one text, exactly `context_length` long, and the number of real tokens (start and
    /// end included).
    pub fn encode(&self, text: &str) -> (Vec<i64>, usize) {
        let n = self.context_length;
        let mut ids = Vec::with_capacity(n);
        ids.push(self.bpe.start_id());
        ids.extend(self.bpe.encode(text));
        ids.push(self.bpe.end_id());
        if ids.len() > n {
            ids.truncate(n);
            if let Some(last) = ids.last_mut() {
                *last = self.bpe.end_id();
            }
        }
        let len = ids.len();
        let pad = match self.padding {
            ClipPadding::EndToken => self.bpe.end_id(),
            ClipPadding::Zero => 0,
        };
        ids.resize(n, pad);
        (ids, len)
    }

    /// Tokens of `text` before truncation, start and end included: more than `context_length`
    /// means [`Self::encode`] cuts it.
    pub fn count(&self, text: &str) -> usize {
        self.bpe.encode(text).len() + 2
    }

    /// A batch `[B, context_length]` with its mask (1 for start, text and end tokens).
    pub fn encode_batch(&self, texts: &[&str]) -> TokenBatch {
        let n = self.context_length;
        let mut ids = Vec::with_capacity(texts.len() * n);
        let mut mask = Vec::with_capacity(texts.len() * n);
        for t in texts {
            let (row, len) = self.encode(t);
            ids.extend(row);
            mask.extend((0..n).map(|i| i64::from(i < len)));
        }
        let shape = [texts.len() as i64, n as i64];
        TokenBatch {
            ids: Tensor::from_slice(&ids).view(shape),
            mask: Tensor::from_slice(&mask).view(shape),
        }
    }
}
