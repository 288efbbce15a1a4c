//! GroupNorm with an affine scale and shift.

use super::{ONE, ZERO};
use crate::error::Result;
use tch::nn::Path;
use tch::Tensor;

/// GroupNorm over `[B, C, ...]` with an affine `weight` and `bias` of `[C]`.
#[derive(Debug)]
pub(crate) struct GroupNorm {
    weight: Tensor,
    bias: Tensor,
    groups: i64,
    eps: f64,
}

impl GroupNorm {
    pub(crate) fn new(p: &Path, groups: i64, channels: i64, eps: f64) -> Result<Self> {
        Ok(GroupNorm {
            weight: p.f_var("weight", &[channels], ONE)?,
            bias: p.f_var("bias", &[channels], ZERO)?,
            groups,
            eps,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.f_group_norm(
            self.groups,
            Some(&self.weight),
            Some(&self.bias),
            self.eps,
            true,
        )?)
    }
}
