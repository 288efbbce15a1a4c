//! What a text encoder hands the backbone: context tokens and a pooled vector per prompt.

use crate::error::Result;
use tch::Tensor;

/// Context tokens `[B, L, D]` and pooled vector `[B, P]` of a batch of prompts.
#[derive(Debug)]
pub struct TextConditioning {
    pub context: Tensor,
    pub pooled: Tensor,
}

impl TextConditioning {
    /// Converts both tensors to `kind` (for example fp16 for storage).
    pub fn to_kind(&self, kind: tch::Kind) -> Result<TextConditioning> {
        Ok(TextConditioning {
            context: self.context.f_to_kind(kind)?,
            pooled: self.pooled.f_to_kind(kind)?,
        })
    }
}
