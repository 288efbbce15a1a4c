//! Spatial upsampling.

use crate::error::Result;
use tch::Tensor;

/// Nearest-neighbour upsampling by 2 in both spatial dimensions.
pub(crate) fn upsample_nearest2x(x: &Tensor) -> Result<Tensor> {
    let s = x.size();
    Ok(x.f_upsample_nearest2d([s[2] * 2, s[3] * 2].as_slice(), Some(2.0), Some(2.0))?)
}
