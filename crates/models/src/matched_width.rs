//! The width rule that makes backbones comparable at equal depth (docs/backbones.md): the
//! paper's MMDiT has hidden `64 d` and `d` heads; another backbone at depth `d` keeps `d` heads
//! and takes the head width whose trainable parameter count is closest to that MMDiT's. One
//! weight set per block (DiT, UViT, CrossDiT) then comes out about `sqrt(2)` wider, MMDiT-3
//! narrower, all within a few percent of MMDiT's parameters (the step between neighbouring head
//! widths is ~2 x 1/head_dim).

use crate::backbone_kind::BackboneKind;
use crate::config::MmditConfig;
use crate::cost::param_count;
use crate::error::{ModelError, Result};

/// The largest head width searched (16x SD3's).
const MAX_HEAD_DIM: i64 = 1024;

/// `config` with its head width (and so its width) chosen so that its trainable parameters are
/// closest to those of the same config built as MMDiT (with MMDiT's own width). Head counts are
/// kept; widths stay multiples of 4 (the sin-cos position table's need).
pub fn match_mmdit_params(config: &MmditConfig) -> Result<MmditConfig> {
    if config.backbone.is_mmdit() {
        return Ok(config.clone());
    }
    let reference = config.as_backbone(BackboneKind::Mmdit, 0);
    let target = param_count(&reference)?.trainable;
    let heads = config.num_attention_heads;
    let with_head_dim = |head_dim: i64| MmditConfig {
        attention_head_dim: head_dim,
        caption_projection_dim: heads * head_dim,
        ..config.clone()
    };
    // Parameters grow with the head width: walk up to the first count at or above the target
    // and keep the nearer of it and the one before.
    let mut best: Option<(i64, i64)> = None;
    for head_dim in 1..=MAX_HEAD_DIM {
        if (heads * head_dim) % 4 != 0 {
            continue;
        }
        let count = param_count(&with_head_dim(head_dim))?.trainable;
        let gap = (count - target).abs();
        if best.is_none_or(|(_, g)| gap < g) {
            best = Some((head_dim, gap));
        }
        if count >= target {
            break;
        }
    }
    let (head_dim, _) = best.ok_or_else(|| {
        ModelError::Config(format!(
            "no head width up to {MAX_HEAD_DIM} gives {heads} heads a width divisible by 4"
        ))
    })?;
    Ok(with_head_dim(head_dim))
}
