//! A 2-D convolution.

use super::ZERO;
use crate::error::Result;
use tch::nn::Path;
use tch::Tensor;

/// A 2-D convolution, weight `[out, in, k, k]`, square stride and zero padding.
#[derive(Debug)]
pub(crate) struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    stride: i64,
    padding: i64,
}

impl Conv2d {
    /// `k`x`k` convolution from `c_in` to `c_out` channels under `p`.
    pub(crate) fn new(
        p: &Path,
        c_in: i64,
        c_out: i64,
        k: i64,
        stride: i64,
        padding: i64,
        bias: bool,
    ) -> Result<Self> {
        Ok(Conv2d {
            weight: p.f_var("weight", &[c_out, c_in, k, k], ZERO)?,
            bias: if bias {
                Some(p.f_var("bias", &[c_out], ZERO)?)
            } else {
                None
            },
            stride,
            padding,
        })
    }

    /// 3x3, stride 1, padding 1, with bias: the shape-preserving convolution.
    pub(crate) fn same3(p: &Path, c_in: i64, c_out: i64) -> Result<Self> {
        Self::new(p, c_in, c_out, 3, 1, 1, true)
    }

    /// 1x1 with or without bias.
    pub(crate) fn pointwise(p: &Path, c_in: i64, c_out: i64, bias: bool) -> Result<Self> {
        Self::new(p, c_in, c_out, 1, 1, 0, bias)
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.f_conv2d(
            &self.weight,
            self.bias.as_ref(),
            [self.stride, self.stride].as_slice(),
            [self.padding, self.padding].as_slice(),
            [1i64, 1].as_slice(),
            1,
        )?)
    }
}
