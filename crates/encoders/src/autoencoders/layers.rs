//! Convolution and GroupNorm with PyTorch's parameter names (`weight`, `bias`), shared by the
//! autoencoders. Parameters start at zero (norm scales at one): every autoencoder here is loaded
//! from a checkpoint.

use crate::error::Result;
use tch::nn::{Init, Path};
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
            weight: p.f_var("weight", &[c_out, c_in, k, k], Init::Const(0.0))?,
            bias: if bias {
                Some(p.f_var("bias", &[c_out], Init::Const(0.0))?)
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
            weight: p.f_var("weight", &[channels], Init::Const(1.0))?,
            bias: p.f_var("bias", &[channels], Init::Const(0.0))?,
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

/// Nearest-neighbour upsampling by 2 in both spatial dimensions.
pub(crate) fn upsample_nearest2x(x: &Tensor) -> Result<Tensor> {
    let s = x.size();
    Ok(x.f_upsample_nearest2d([s[2] * 2, s[3] * 2].as_slice(), Some(2.0), Some(2.0))?)
}
