//! Where each independently droppable text source sits in the combined conditioning, so that
//! dropout can replace one source by zeros after the sources were combined (precomputed
//! embeddings hold only the combination).
//!
//! SD3 (docs/protocol.md section 6): CLIP-L is channels `0..768` of the first 77 tokens and
//! pooled channels `0..768`; CLIP-G channels `768..2048` of the same tokens and pooled
//! `768..2048`; T5 all channels of tokens `77..154` and nothing of the pooled vector. MiniLM
//! alone is one source covering everything.

use crate::error::{EncoderError, Result};
use crate::text::sd3::Sd3Dims;
use serde::{Deserialize, Serialize};

/// One source's region: half-open `[start, end)` ranges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextSourceSpan {
    /// `clip_l`, `clip_g`, `t5`, `minilm` (or `text` for embeddings of unknown layout).
    pub name: String,
    /// Context tokens the source fills.
    pub tokens: [i64; 2],
    /// Context channels the source fills within those tokens.
    pub context_channels: [i64; 2],
    /// Pooled channels the source fills; `None` when it contributes no pooled vector (T5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pooled_channels: Option<[i64; 2]>,
}

impl TextSourceSpan {
    /// One source covering a whole `[tokens, width]` context and `pooled` vector.
    pub fn whole(name: &str, tokens: i64, width: i64, pooled: i64) -> Self {
        Self {
            name: name.to_owned(),
            tokens: [0, tokens],
            context_channels: [0, width],
            pooled_channels: Some([0, pooled]),
        }
    }

    /// SD3's three sources in keep-mask order (clip_l, clip_g, t5).
    pub fn sd3(d: &Sd3Dims) -> Vec<Self> {
        let l = d.clip_l_width;
        let g = d.clip_g_width;
        let (lp, gp) = (d.clip_l_pooled, d.clip_g_pooled);
        vec![
            Self {
                name: "clip_l".into(),
                tokens: [0, d.clip_tokens],
                context_channels: [0, l],
                pooled_channels: Some([0, lp]),
            },
            Self {
                name: "clip_g".into(),
                tokens: [0, d.clip_tokens],
                context_channels: [l, l + g],
                pooled_channels: Some([lp, lp + gp]),
            },
            Self {
                name: "t5".into(),
                tokens: [d.clip_tokens, d.clip_tokens + d.t5_tokens],
                context_channels: [0, d.context_width],
                pooled_channels: None,
            },
        ]
    }

    /// Checks `spans` against a `[tokens, width]` context and a `pooled` vector: non-empty,
    /// distinct names, every range non-empty and inside its tensor.
    pub fn check_all(spans: &[Self], tokens: i64, width: i64, pooled: i64) -> Result<()> {
        if spans.is_empty() {
            return Err(EncoderError::Input("no text sources".into()));
        }
        let mut names = std::collections::HashSet::new();
        for s in spans {
            if !names.insert(s.name.as_str()) {
                return Err(EncoderError::Input(format!(
                    "text source {:?} is listed twice",
                    s.name
                )));
            }
            let inside = |r: [i64; 2], n: i64| r[0] >= 0 && r[0] < r[1] && r[1] <= n;
            let pooled_ok = s.pooled_channels.is_none_or(|r| inside(r, pooled));
            if !inside(s.tokens, tokens) || !inside(s.context_channels, width) || !pooled_ok {
                return Err(EncoderError::Input(format!(
                    "text source {:?}: tokens {:?}, context channels {:?}, pooled channels {:?} \
                     do not fit a context of {tokens} x {width} and a pooled vector of {pooled}",
                    s.name, s.tokens, s.context_channels, s.pooled_channels
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sd3_spans_tile_the_combined_conditioning() {
        let d = Sd3Dims::SD3;
        let spans = TextSourceSpan::sd3(&d);
        TextSourceSpan::check_all(&spans, 154, 4096, 2048).unwrap();
        assert_eq!(spans[1].context_channels, [768, 2048]);
        assert_eq!(spans[1].pooled_channels, Some([768, 2048]));
        assert_eq!(spans[2].tokens, [77, 154]);
        assert_eq!(spans[2].pooled_channels, None);
        // A span outside the tensors, or a repeated name, is refused.
        assert!(TextSourceSpan::check_all(&spans, 100, 4096, 2048).is_err());
        let twice = vec![spans[0].clone(), spans[0].clone()];
        assert!(TextSourceSpan::check_all(&twice, 154, 4096, 2048).is_err());
        assert!(TextSourceSpan::check_all(&[], 1, 1, 1).is_err());
    }
}
