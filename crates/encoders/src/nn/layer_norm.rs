//! LayerNorm with an affine scale and shift.

use super::{ONE, ZERO};
use crate::error::Result;
use tch::nn::Path;
use tch::Tensor;

/// LayerNorm over the last dim with `weight` and `bias`.
#[derive(Debug)]
pub(crate) struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    pub(crate) fn new(path: &Path, dim: i64, eps: f64) -> Result<Self> {
        Ok(LayerNorm {
            weight: path.f_var("weight", &[dim], ONE)?,
            bias: path.f_var("bias", &[dim], ZERO)?,
            eps,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dim = self.weight.size()[0];
        Ok(x.f_layer_norm(
            [dim].as_slice(),
            Some(&self.weight),
            Some(&self.bias),
            self.eps,
            true,
        )?)
    }
}
