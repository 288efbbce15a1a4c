//! Multi-head attention helpers: splitting and merging heads, the key-mask bias.

use crate::error::Result;
use tch::{Kind, Tensor};

/// `[B, L, H·D]` -> `[B, H, L, D]`.
pub(crate) fn split_heads(x: &Tensor, heads: i64) -> Result<Tensor> {
    let s = x.size();
    Ok(x.f_view([s[0], s[1], heads, s[2] / heads].as_slice())?
        .f_transpose(1, 2)?)
}

/// `[B, H, L, D]` -> `[B, L, H·D]`.
pub(crate) fn merge_heads(x: &Tensor) -> Result<Tensor> {
    let s = x.size();
    Ok(x.f_transpose(1, 2)?
        .f_contiguous()?
        .f_view([s[0], s[2], s[1] * s[3]].as_slice())?)
}

/// Additive attention bias `[B, 1, 1, L]` from a key mask `[B, L]` (1 attend, 0 ignore): 0 where
/// attended, the dtype's lowest value elsewhere (what Hugging Face adds).
pub(crate) fn key_mask_bias(mask: &Tensor, kind: Kind) -> Result<Tensor> {
    let s = mask.size();
    let lowest = match kind {
        Kind::Half => -65504.0,
        Kind::BFloat16 => -3.3895313892515355e38,
        Kind::Double => f64::MIN,
        _ => f32::MIN as f64,
    };
    Ok(mask
        .f_to_kind(kind)?
        .f_neg()?
        .f_add_scalar(1.0)?
        .f_mul_scalar(lowest)?
        .f_view([s[0], 1, 1, s[1]].as_slice())?)
}
