//! diffusers' VAE `Encoder` and `Decoder` (under `encoder.` and `decoder.`): `conv_in`, the
//! down blocks (resnets, then a stride-2 `downsamplers.0.conv` on all but the last) or up blocks
//! (`layers_per_block + 1` resnets, then nearest 2x and `upsamplers.0.conv` on all but the last),
//! `mid_block`, `conv_norm_out`, SiLU (always SiLU, whatever `act_fn` says) and `conv_out`.

use super::blocks::{MidBlock, ResnetBlock, EPS};
use super::config::{AutoencoderKLConfig, KlActivation};
use crate::error::Result;
use crate::nn::{upsample_nearest2x, Conv2d, GroupNorm};
use tch::{nn, Tensor};

#[derive(Debug)]
struct Stage {
    resnets: Vec<ResnetBlock>,
    /// Down- or upsampling convolution, absent on the last stage.
    resample: Option<Conv2d>,
}

impl Stage {
    fn resnets(&self, x: &Tensor, act: KlActivation) -> Result<Tensor> {
        let mut h = x.shallow_clone();
        for r in &self.resnets {
            h = r.forward(&h, act)?;
        }
        Ok(h)
    }
}

/// Pixels `[B, in, H, W]` to moments `[B, 2 latent, H/f, W/f]` (mean, then log-variance).
#[derive(Debug)]
pub(crate) struct Encoder {
    conv_in: Conv2d,
    stages: Vec<Stage>,
    mid: MidBlock,
    norm_out: GroupNorm,
    conv_out: Conv2d,
    act: KlActivation,
}

impl Encoder {
    pub(crate) fn new(p: &nn::Path, c: &AutoencoderKLConfig, act: KlActivation) -> Result<Self> {
        let widths = &c.block_out_channels;
        let g = c.norm_num_groups;
        let last = widths.len() - 1;
        let mut stages = Vec::with_capacity(widths.len());
        let mut c_prev = widths[0];
        for (i, &w) in widths.iter().enumerate() {
            let bp = p / "down_blocks" / i;
            let resnets = (0..c.layers_per_block)
                .map(|j| {
                    let c_in = if j == 0 { c_prev } else { w };
                    ResnetBlock::new(&(&bp / "resnets" / j), c_in, w, g)
                })
                .collect::<Result<Vec<_>>>()?;
            let resample = if i < last {
                let cp = &bp / "downsamplers" / 0 / "conv";
                Some(Conv2d::new(&cp, w, w, 3, 2, 0, true)?)
            } else {
                None
            };
            stages.push(Stage { resnets, resample });
            c_prev = w;
        }
        let top = widths[last];
        Ok(Encoder {
            conv_in: Conv2d::same3(&(p / "conv_in"), c.in_channels, widths[0])?,
            stages,
            mid: MidBlock::new(&(p / "mid_block"), top, g, c.mid_block_add_attention)?,
            norm_out: GroupNorm::new(&(p / "conv_norm_out"), g, top, EPS)?,
            conv_out: Conv2d::same3(&(p / "conv_out"), top, 2 * c.latent_channels)?,
            act,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = self.conv_in.forward(x)?;
        for stage in &self.stages {
            h = stage.resnets(&h, self.act)?;
            if let Some(conv) = &stage.resample {
                // diffusers' `Downsample2D(padding=0)`: pad right and bottom by one, then a
                // stride-2 3x3 convolution without padding.
                h = conv.forward(&h.f_constant_pad_nd([0i64, 1, 0, 1].as_slice())?)?;
            }
        }
        h = self.mid.forward(&h, self.act)?;
        let h = self.norm_out.forward(&h)?.f_silu()?;
        self.conv_out.forward(&h)
    }
}

/// Latents `[B, latent, h, w]` to pixels `[B, out, h f, w f]`.
#[derive(Debug)]
pub(crate) struct Decoder {
    conv_in: Conv2d,
    mid: MidBlock,
    stages: Vec<Stage>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
    act: KlActivation,
}

impl Decoder {
    pub(crate) fn new(p: &nn::Path, c: &AutoencoderKLConfig, act: KlActivation) -> Result<Self> {
        let widths: Vec<i64> = c.block_out_channels.iter().rev().copied().collect();
        let g = c.norm_num_groups;
        let last = widths.len() - 1;
        let mut stages = Vec::with_capacity(widths.len());
        let mut c_prev = widths[0];
        for (i, &w) in widths.iter().enumerate() {
            let bp = p / "up_blocks" / i;
            let resnets = (0..=c.layers_per_block)
                .map(|j| {
                    let c_in = if j == 0 { c_prev } else { w };
                    ResnetBlock::new(&(&bp / "resnets" / j), c_in, w, g)
                })
                .collect::<Result<Vec<_>>>()?;
            let resample = if i < last {
                Some(Conv2d::same3(&(&bp / "upsamplers" / 0 / "conv"), w, w)?)
            } else {
                None
            };
            stages.push(Stage { resnets, resample });
            c_prev = w;
        }
        Ok(Decoder {
            conv_in: Conv2d::same3(&(p / "conv_in"), c.latent_channels, widths[0])?,
            mid: MidBlock::new(&(p / "mid_block"), widths[0], g, c.mid_block_add_attention)?,
            stages,
            norm_out: GroupNorm::new(&(p / "conv_norm_out"), g, widths[last], EPS)?,
            conv_out: Conv2d::same3(&(p / "conv_out"), widths[last], c.out_channels)?,
            act,
        })
    }

    pub(crate) fn forward(&self, z: &Tensor) -> Result<Tensor> {
        let mut h = self.conv_in.forward(z)?;
        h = self.mid.forward(&h, self.act)?;
        for stage in &self.stages {
            h = stage.resnets(&h, self.act)?;
            if let Some(conv) = &stage.resample {
                h = conv.forward(&upsample_nearest2x(&h)?)?;
            }
        }
        let h = self.norm_out.forward(&h)?.f_silu()?;
        self.conv_out.forward(&h)
    }
}
