//! UViT (Bao et al., U-ViT; the paper's "UViT" after Hoogeboom et al.): DiT blocks with long
//! skip connections. With `d` blocks and `k = d / 2` (rounded down), block `i < k` passes its
//! output on and keeps it; block `d - 1 - i` concatenates that kept output to its input along
//! the channels and maps it back to the width with `skip_linear` (U-ViT's `Linear(2H, H)`)
//! before its DiT block; a middle block (odd `d`) has no skip.
//!
//! For activation checkpointing the kept outputs travel as extra streams: the first half pushes
//! one stream per block, the second half pops one, so every block is a map from streams to
//! streams and the checkpointing walk needs nothing UViT-specific.

use crate::activation_checkpointing::StreamBlock;
use crate::attention_stats::AttentionStats;
use crate::backbone_block::BackboneBlock;
use crate::builder::Scope;
use crate::dit_block::DitBlock;
use crate::error::{ModelError, Result};
use crate::layers::Linear;
use tch::Tensor;

#[derive(Debug)]
enum SkipRole {
    /// First half: keep the output for a later block.
    Push,
    /// The middle block of an odd stack.
    Plain,
    /// Second half: take the last kept output (`transformer_blocks.N.skip_linear`).
    Pop(Linear),
}

#[derive(Debug)]
pub(crate) struct UvitBlock {
    block: DitBlock,
    role: SkipRole,
}

impl UvitBlock {
    /// Block `index` of `depth` under `scope` (`transformer_blocks.<index>`).
    pub(crate) fn new(
        scope: &Scope,
        index: i64,
        depth: i64,
        hidden: i64,
        heads: i64,
        head_dim: i64,
        qk_norm: bool,
    ) -> Result<Self> {
        let block = DitBlock::new(scope, hidden, heads, head_dim, qk_norm, false)?;
        let k = depth / 2;
        let role = if index < k {
            SkipRole::Push
        } else if index >= depth - k {
            SkipRole::Pop(Linear::xavier(
                &scope.sub("skip_linear"),
                2 * hidden,
                hidden,
            )?)
        } else {
            SkipRole::Plain
        };
        Ok(UvitBlock { block, role })
    }

    /// The block's input: the sequence, joined with the last kept output for a popping block.
    /// Returns it and the kept outputs that remain.
    fn input<'s>(&self, streams: &'s [Tensor]) -> Result<(Tensor, &'s [Tensor])> {
        let (x, kept) = (&streams[0], &streams[1..]);
        match &self.role {
            SkipRole::Pop(skip_linear) => {
                let (last, rest) = kept.split_last().ok_or_else(|| {
                    ModelError::Input("UViT: a skip block found no kept output".into())
                })?;
                let joined = Tensor::f_cat(&[x, last], 2)?;
                Ok((skip_linear.forward(&joined)?, rest))
            }
            _ => Ok((x.shallow_clone(), kept)),
        }
    }

    fn output(&self, y: Tensor, kept: &[Tensor]) -> Vec<Tensor> {
        let mut out = Vec::with_capacity(kept.len() + 2);
        let keep = matches!(self.role, SkipRole::Push).then(|| y.shallow_clone());
        out.push(y);
        out.extend(kept.iter().map(Tensor::shallow_clone));
        out.extend(keep);
        out
    }
}

/// Streams `[sequence, kept outputs...]`.
impl StreamBlock for UvitBlock {
    fn forward_streams(&self, streams: &[Tensor], c: &Tensor) -> Result<Vec<Tensor>> {
        let (x, kept) = self.input(streams)?;
        Ok(self.output(self.block.forward(&x, c)?, kept))
    }
}

impl BackboneBlock for UvitBlock {
    fn forward_streams_with_stats(
        &self,
        streams: &[Tensor],
        c: &Tensor,
    ) -> Result<(Vec<Tensor>, AttentionStats)> {
        let (x, kept) = self.input(streams)?;
        let (y, stats) = self.block.forward_with_stats(&x, c)?;
        Ok((self.output(y, kept), stats))
    }
}
