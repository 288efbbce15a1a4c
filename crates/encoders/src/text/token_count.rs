//! How long a prompt is for each tokenizer of a text encoder, against how many tokens that
//! tokenizer keeps: the encoders truncate silently, so a caller (`flowscale generate`) uses this
//! to say which prompt was cut and by how much.
//!
//! The limit is where the text stops being read at all: MiniLM's `max_seq_length` (its context
//! keeps only the first `tokens` states, but the pooled sentence embedding and the attention of
//! those states see every token up to the limit), CLIP's 77 and T5's configured length. Counts
//! include the special tokens each tokenizer adds.

use crate::error::Result;
use crate::text::encoder::TextEncoder;

/// One source's count for one prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenCount {
    /// The source's name as in the combined conditioning (`minilm`, `clip_l`, `clip_g`, `t5`).
    pub source: String,
    /// Tokens of the whole prompt, special tokens included.
    pub tokens: usize,
    /// Tokens the source reads; the rest is cut.
    pub limit: usize,
    /// Token states the source puts into the context (MiniLM: its `tokens`, which may be fewer
    /// than it reads; CLIP and T5: the same as `limit`).
    pub context: usize,
}

impl TokenCount {
    /// The prompt is longer than the source reads.
    pub fn truncated(&self) -> bool {
        self.tokens > self.limit
    }

    /// Some of the prompt's token states do not reach the context (a MiniLM context shorter
    /// than the prompt, while the pooled embedding still reads it all), or it is truncated.
    pub fn context_cut(&self) -> bool {
        self.tokens > self.context.min(self.limit)
    }
}

impl TextEncoder {
    /// The count of `prompt` for each source that tokenizes text, in source order (absent SD3
    /// encoders contribute zeros and count nothing).
    pub fn token_counts(&self, prompt: &str) -> Result<Vec<TokenCount>> {
        let count = |source: &str, tokens: usize, limit: usize| TokenCount {
            source: source.to_owned(),
            tokens,
            limit,
            context: limit,
        };
        Ok(match self {
            TextEncoder::MiniLm(m) => {
                let t = &m.model.tokenizer;
                vec![TokenCount {
                    context: m.tokens,
                    ..count("minilm", t.count(prompt)?, t.max_len())
                }]
            }
            TextEncoder::Sd3(s) => {
                let mut out = Vec::new();
                for (name, clip) in [("clip_l", &s.clip_l), ("clip_g", &s.clip_g)] {
                    if let Some(c) = clip {
                        let t = &c.tokenizer;
                        out.push(count(name, t.count(prompt), t.context_length));
                    }
                }
                if let Some(t5) = &s.t5 {
                    out.push(count("t5", t5.tokenizer.count(prompt)?, t5.tokens));
                }
                out
            }
        })
    }
}
