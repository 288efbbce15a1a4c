//! CLIP image preprocessing as transformers' `CLIPImageProcessor` does it: resize the shorter
//! side to 224 with bicubic interpolation (the longer side to `int(224 * long / short)`), centre
//! crop 224 (`top = (h - 224) / 2` rounded down), rescale by 1/255, normalise with CLIP's mean
//! and standard deviation.
//!
//! Resizing follows PIL's `Image.resize(..., BICUBIC)` on 8-bit images, which is what
//! `CLIPImageProcessorPil` and OpenAI's original CLIP preprocessing run: the bicubic filter with
//! Keys' a = -0.5, its support widened by the scale factor when downscaling (anti-aliasing),
//! applied one axis at a time, horizontal first, with the intermediate image clamped to
//! [0, 255] and rounded to 8 bits, and the result rounded again. Each pass here is torch's
//! anti-aliased bicubic (`_upsample_bicubic2d_aa`, the same filter in floating point) on one
//! axis followed by clamp and round (halves up, as PIL). PIL computes in fixed point
//! (coefficients with 22 fractional bits), so the two can still differ by one level where a
//! value sits within float error of a half; the tests measure this (at most one level, on about
//! 0.002-0.02% of values) against committed PIL outputs.
//!
//! Transformers' torchvision backend (`CLIPImageProcessor` when torchvision is installed)
//! resizes both axes in one floating-point pass and rounds once. Measured against PIL on the
//! fixture images (full resized images, before cropping): that one pass is up to 16 levels
//! away at 18-24% of values on noisy upscaled images (bicubic overshoot that PIL clamps after
//! its horizontal pass is kept), up to 2 levels when downscaling; plain `upsample_bicubic2d`
//! (a = -0.75, no anti-aliasing) is up to 21 levels away at 60-80% of values and is not used.
//! The two passes used here are at most one level away, at 0.006-0.016% of values (0.013-0.035%
//! when they rounded halves to even).

use crate::error::{EncoderError, Result};
use tch::{Kind, Tensor};

/// OpenAI CLIP's per-channel mean (RGB).
pub const CLIP_MEAN: [f64; 3] = [0.48145466, 0.4578275, 0.40821073];
/// OpenAI CLIP's per-channel standard deviation (RGB).
pub const CLIP_STD: [f64; 3] = [0.26862954, 0.26130258, 0.27577711];

/// One anti-aliased bicubic resize of float 8-bit values to `h x w`, clamped and rounded to
/// 8 bits; the identity when the size does not change.
///
/// Halves round up, as PIL's fixed point does (it adds half a unit, then shifts), not to even
/// as `torch.round`: exact halves are common where the scale is a small ratio (2x down, 4/3 up),
/// and rounding them to even put 0.03-0.4% of the values of 32x32 outputs one level off.
fn bicubic_8bit(x: &Tensor, h: i64, w: i64) -> Result<Tensor> {
    let s = x.size();
    if (s[2], s[3]) == (h, w) {
        return Ok(x.shallow_clone());
    }
    Ok(
        x.f_internal_upsample_bicubic2d_aa([h, w].as_slice(), false, None, None)?
            .f_clamp(0.0, 255.0)?
            .f_add_scalar(0.5)?
            .f_floor()?,
    )
}

/// Resize, crop and normalisation settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipPreprocess {
    /// Target of the shorter side.
    pub shortest_edge: i64,
    /// Side of the square centre crop.
    pub crop: i64,
    pub mean: [f64; 3],
    pub std: [f64; 3],
}

impl Default for ClipPreprocess {
    /// `CLIPImageProcessor()`'s defaults: 224, 224, CLIP mean and std.
    fn default() -> Self {
        ClipPreprocess::for_size(224)
    }
}

impl ClipPreprocess {
    /// Shorter side and crop both `size` (a model's `image_size`), CLIP mean and std.
    pub fn for_size(size: i64) -> Self {
        ClipPreprocess {
            shortest_edge: size,
            crop: size,
            mean: CLIP_MEAN,
            std: CLIP_STD,
        }
    }

    /// Size `(h, w)` after resizing an `h x w` image: the shorter side becomes `shortest_edge`,
    /// the longer `int(shortest_edge * long / short)` (Python's float division, truncated).
    pub fn resized_size(&self, h: i64, w: i64) -> (i64, i64) {
        let (short, long) = if w <= h { (w, h) } else { (h, w) };
        let new_long = (self.shortest_edge as f64 * long as f64 / short as f64) as i64;
        if w <= h {
            (new_long, self.shortest_edge)
        } else {
            (self.shortest_edge, new_long)
        }
    }

    /// 8-bit images `[B, 3, H, W]` (any kind holding integers 0..=255) resized and centre
    /// cropped, as floats holding 8-bit values `[B, 3, crop, crop]`.
    pub fn resize_crop_u8(&self, images: &Tensor) -> Result<Tensor> {
        let s = images.size();
        if s.len() != 4 || s[1] != 3 || s[2] < 1 || s[3] < 1 {
            return Err(EncoderError::Input(format!(
                "CLIP preprocessing takes RGB images [B, 3, H, W], got {s:?}"
            )));
        }
        let (h, w) = self.resized_size(s[2], s[3]);
        if h < self.crop || w < self.crop {
            return Err(EncoderError::Input(format!(
                "CLIP preprocessing: {}x{} resized to {h}x{w} is smaller than the {} crop",
                s[2], s[3], self.crop
            )));
        }
        let x = images.f_to_kind(Kind::Float)?;
        // PIL order: the horizontal pass, then the vertical, each rounded to 8 bits.
        let x = bicubic_8bit(&x, s[2], w)?;
        let x = bicubic_8bit(&x, h, w)?;
        let top = (h - self.crop) / 2;
        let left = (w - self.crop) / 2;
        Ok(x.f_narrow(2, top, self.crop)?
            .f_narrow(3, left, self.crop)?
            .f_contiguous()?)
    }

    /// 8-bit values `[B, 3, h, w]` (floats) rescaled by 1/255 and normalised.
    pub fn normalise(&self, u8_values: &Tensor) -> Result<Tensor> {
        let device = u8_values.device();
        let mean = Tensor::f_from_slice(&self.mean)?
            .f_to_kind(Kind::Float)?
            .f_view([1, 3, 1, 1].as_slice())?
            .f_to_device(device)?;
        let std = Tensor::f_from_slice(&self.std)?
            .f_to_kind(Kind::Float)?
            .f_view([1, 3, 1, 1].as_slice())?
            .f_to_device(device)?;
        Ok(u8_values
            .f_to_kind(Kind::Float)?
            .f_mul_scalar(1.0 / 255.0)?
            .f_sub(&mean)?
            .f_div(&std)?)
    }

    /// The full pipeline: 8-bit images `[B, 3, H, W]` to CLIP pixels `[B, 3, crop, crop]`
    /// (fp32).
    pub fn apply(&self, images: &Tensor) -> Result<Tensor> {
        self.normalise(&self.resize_crop_u8(images)?)
    }
}
