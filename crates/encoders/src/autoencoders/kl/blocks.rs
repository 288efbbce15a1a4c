//! The blocks of diffusers' VAE at their keys: `ResnetBlock2D` (`norm1`, `conv1`, `norm2`,
//! `conv2`, `conv_shortcut`), the single-head mid-block `Attention` (`group_norm`, `to_q`,
//! `to_k`, `to_v`, `to_out.0`) and `UNetMidBlock2D` (`resnets.{0,1}`, `attentions.0`). Every
//! norm here uses eps 1e-6, as diffusers' `Encoder`/`Decoder` pass.

use super::config::KlActivation;
use crate::error::Result;
use crate::nn::Linear;
use crate::nn::{Conv2d, GroupNorm};
use tch::{nn, Tensor};

pub(crate) const EPS: f64 = 1e-6;

/// Pre-norm residual block without time embedding; a 1x1 `conv_shortcut` when the width
/// changes.
#[derive(Debug)]
pub(crate) struct ResnetBlock {
    norm1: GroupNorm,
    conv1: Conv2d,
    norm2: GroupNorm,
    conv2: Conv2d,
    shortcut: Option<Conv2d>,
}

impl ResnetBlock {
    pub(crate) fn new(p: &nn::Path, c_in: i64, c_out: i64, groups: i64) -> Result<Self> {
        Ok(ResnetBlock {
            norm1: GroupNorm::new(&(p / "norm1"), groups, c_in, EPS)?,
            conv1: Conv2d::same3(&(p / "conv1"), c_in, c_out)?,
            norm2: GroupNorm::new(&(p / "norm2"), groups, c_out, EPS)?,
            conv2: Conv2d::same3(&(p / "conv2"), c_out, c_out)?,
            shortcut: if c_in != c_out {
                Some(Conv2d::pointwise(
                    &(p / "conv_shortcut"),
                    c_in,
                    c_out,
                    true,
                )?)
            } else {
                None
            },
        })
    }

    pub(crate) fn forward(&self, x: &Tensor, act: KlActivation) -> Result<Tensor> {
        let h = self.conv1.forward(&act.apply(&self.norm1.forward(x)?)?)?;
        let h = self.conv2.forward(&act.apply(&self.norm2.forward(&h)?)?)?;
        let skip = match &self.shortcut {
            Some(conv) => conv.forward(x)?,
            None => x.shallow_clone(),
        };
        Ok(skip.f_add(&h)?)
    }
}

/// Self-attention over all positions with one head as wide as the channels, plus the input.
#[derive(Debug)]
pub(crate) struct SpatialAttention {
    norm: GroupNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
}

impl SpatialAttention {
    pub(crate) fn new(p: &nn::Path, channels: i64, groups: i64) -> Result<Self> {
        Ok(SpatialAttention {
            norm: GroupNorm::new(&(p / "group_norm"), groups, channels, EPS)?,
            q: Linear::new(&(p / "to_q"), channels, channels, true)?,
            k: Linear::new(&(p / "to_k"), channels, channels, true)?,
            v: Linear::new(&(p / "to_v"), channels, channels, true)?,
            out: Linear::new(&(p / "to_out" / 0), channels, channels, true)?,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let s = x.size();
        let (b, c, h, w) = (s[0], s[1], s[2], s[3]);
        // GroupNorm of [B, C, H, W] equals diffusers' GroupNorm of the [B, C, H*W] sequence.
        let tokens = self
            .norm
            .forward(x)?
            .f_view([b, c, h * w].as_slice())?
            .f_transpose(1, 2)?;
        let heads = |t: Tensor| t.f_unsqueeze(1);
        let q = heads(self.q.forward(&tokens)?)?;
        let k = heads(self.k.forward(&tokens)?)?;
        let v = heads(self.v.forward(&tokens)?)?;
        let a = Tensor::f_scaled_dot_product_attention(
            &q,
            &k,
            &v,
            None::<&Tensor>,
            0.0,
            false,
            None,
            false,
        )?
        .f_squeeze_dim(1)?;
        let y = self
            .out
            .forward(&a)?
            .f_transpose(1, 2)?
            .f_reshape([b, c, h, w].as_slice())?;
        Ok(y.f_add(x)?)
    }
}

/// `UNetMidBlock2D` with one layer: resnet, attention (optional), resnet.
#[derive(Debug)]
pub(crate) struct MidBlock {
    first: ResnetBlock,
    attention: Option<SpatialAttention>,
    second: ResnetBlock,
}

impl MidBlock {
    pub(crate) fn new(p: &nn::Path, channels: i64, groups: i64, attention: bool) -> Result<Self> {
        let resnets = p / "resnets";
        Ok(MidBlock {
            first: ResnetBlock::new(&(&resnets / 0), channels, channels, groups)?,
            attention: if attention {
                Some(SpatialAttention::new(
                    &(p / "attentions" / 0),
                    channels,
                    groups,
                )?)
            } else {
                None
            },
            second: ResnetBlock::new(&(&resnets / 1), channels, channels, groups)?,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor, act: KlActivation) -> Result<Tensor> {
        let mut h = self.first.forward(x, act)?;
        if let Some(attention) = &self.attention {
            h = attention.forward(&h)?;
        }
        self.second.forward(&h, act)
    }
}
