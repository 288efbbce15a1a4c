//! Tokenizers read from a Hugging Face `tokenizer.json` (the `tokenizers` crate runs the
//! pipeline the file describes: normaliser, pre-tokeniser, model, post-processor). Used for BERT
//! WordPiece and T5 Unigram; padding and truncation are ours, not the file's.

use crate::error::{EncoderError, Result};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

/// How a batch is padded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// To the longest sequence of the batch.
    Longest,
    /// To exactly this many tokens (after truncation to at most that).
    Fixed(usize),
}

/// Token ids `[B, L]` (i64) and the attention mask `[B, L]` (i64, 1 token, 0 padding).
#[derive(Debug)]
pub struct TokenBatch {
    pub ids: Tensor,
    pub mask: Tensor,
}

impl TokenBatch {
    pub fn to_device(&self, device: Device) -> Result<TokenBatch> {
        Ok(TokenBatch {
            ids: self.ids.f_to_device(device)?,
            mask: self.mask.f_to_device(device)?,
        })
    }
}

/// A `tokenizer.json` tokenizer with special tokens added, truncated to `max_len` tokens (the
/// post-processor's special tokens are kept when truncating) and padded with `pad_id`.
pub struct HfTokenizer {
    inner: Tokenizer,
    /// The same pipeline without truncation: counts how long a text really is, so a caller can
    /// say that a prompt was cut (the truncated ids cannot tell).
    untruncated: Tokenizer,
    path: PathBuf,
    pad_id: i64,
    max_len: usize,
}

impl std::fmt::Debug for HfTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HfTokenizer({})", self.path.display())
    }
}

impl HfTokenizer {
    /// Loads `path`; `max_len` bounds every encoded sequence including special tokens.
    pub fn from_file(path: &Path, max_len: usize) -> Result<Self> {
        let err = |message: String| EncoderError::Tokenizer {
            path: path.to_owned(),
            message,
        };
        if !path.is_file() {
            return Err(err("file not found".into()));
        }
        let mut inner = Tokenizer::from_file(path).map_err(|e| err(e.to_string()))?;
        inner.with_padding(None);
        let mut untruncated = inner.clone();
        untruncated
            .with_truncation(None)
            .map_err(|e| err(e.to_string()))?;
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| err(e.to_string()))?;
        let pad_id = ["[PAD]", "<pad>"]
            .iter()
            .find_map(|t| inner.token_to_id(t))
            .unwrap_or(0) as i64;
        Ok(HfTokenizer {
            inner,
            untruncated,
            path: path.to_owned(),
            pad_id,
            max_len,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn pad_id(&self) -> i64 {
        self.pad_id
    }

    /// The most tokens (special tokens included) an encoded text keeps.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Tokens of `text` with special tokens and without truncation: more than [`Self::max_len`]
    /// means [`Self::encode`] cuts it.
    pub fn count(&self, text: &str) -> Result<usize> {
        let enc = self
            .untruncated
            .encode(text, true)
            .map_err(|e| EncoderError::Tokenizer {
                path: self.path.clone(),
                message: format!("counting the tokens of {text:?}: {e}"),
            })?;
        Ok(enc.len())
    }

    /// Ids of one text with special tokens.
    pub fn encode(&self, text: &str) -> Result<Vec<i64>> {
        let enc = self
            .inner
            .encode(text, true)
            .map_err(|e| EncoderError::Tokenizer {
                path: self.path.clone(),
                message: format!("encoding {text:?}: {e}"),
            })?;
        Ok(enc.get_ids().iter().map(|&i| i as i64).collect())
    }

    /// A padded batch of `texts` on the CPU.
    pub fn encode_batch(&self, texts: &[&str], padding: Padding) -> Result<TokenBatch> {
        let seqs = texts
            .iter()
            .map(|t| self.encode(t))
            .collect::<Result<Vec<_>>>()?;
        Ok(pad_batch(&seqs, padding, self.pad_id))
    }
}

/// Pads (and for [`Padding::Fixed`] truncates) id sequences into a [`TokenBatch`].
pub fn pad_batch(seqs: &[Vec<i64>], padding: Padding, pad_id: i64) -> TokenBatch {
    let len = match padding {
        Padding::Longest => seqs.iter().map(Vec::len).max().unwrap_or(0),
        Padding::Fixed(n) => n,
    };
    let mut ids = Vec::with_capacity(seqs.len() * len);
    let mut mask = Vec::with_capacity(seqs.len() * len);
    for s in seqs {
        let n = s.len().min(len);
        ids.extend_from_slice(&s[..n]);
        mask.extend(std::iter::repeat_n(1i64, n));
        ids.extend(std::iter::repeat_n(pad_id, len - n));
        mask.extend(std::iter::repeat_n(0i64, len - n));
    }
    let shape = [seqs.len() as i64, len as i64];
    TokenBatch {
        ids: Tensor::from_slice(&ids).view(shape),
        mask: Tensor::from_slice(&mask).view(shape).to_kind(Kind::Int64),
    }
}
