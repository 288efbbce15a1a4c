//! The narrow hook the trainer needs from an autoencoder: latents back to pixels, for sample
//! grids and anything else that shows images of a latent-space run.
//!
//! The model works on scaled latents `(z - shift_factor) * scaling_factor`; [`PixelDecoder`]
//! undoes the scaling and hands raw latents `z` to the autoencoder's decoder, which returns
//! pixels in [-1, 1]. Pixel-space shards use the identity autoencoder. The real autoencoders
//! (`flowscale_encoders::autoencoders`) plug in through [`LatentDecoder`].

use crate::error::{Result, TrainError};
use flowscale_data::shards::AutoencoderInfo;
use std::path::Path;
use tch::Tensor;

/// Decodes raw (unscaled) latents `[B, C, h, w]` into pixels `[B, 3 or 1, H, W]` in [-1, 1].
pub trait LatentDecoder {
    fn decode(&self, latents: &Tensor) -> Result<Tensor>;
}

/// Pixel space: the latents are the images.
#[derive(Debug, Clone, Copy, Default)]
pub struct IdentityDecoder;

impl LatentDecoder for IdentityDecoder {
    fn decode(&self, latents: &Tensor) -> Result<Tensor> {
        Ok(latents.shallow_clone())
    }
}

/// A decoder with the scaling of the latents the model sees.
pub struct PixelDecoder {
    decoder: Box<dyn LatentDecoder>,
    scaling_factor: f64,
    shift_factor: f64,
}

impl PixelDecoder {
    /// Pixel-space data: nothing to undo.
    pub fn identity() -> Self {
        Self {
            decoder: Box::new(IdentityDecoder),
            scaling_factor: 1.0,
            shift_factor: 0.0,
        }
    }

    /// The decoder of the autoencoder a shard manifest names (`manifest` in errors).
    pub fn for_autoencoder(info: &AutoencoderInfo, manifest: &Path) -> Result<Self> {
        let decoder: Box<dyn LatentDecoder> = match info.kind.as_str() {
            "identity" => Box::new(IdentityDecoder),
            other => {
                return Err(TrainError::Invalid(format!(
                    "{}: the shards were encoded by the {other:?} autoencoder {:?}; the trainer \
                     cannot decode its latents yet (only \"identity\" shards train for now, \
                     issue #5)",
                    manifest.display(),
                    info.name
                )))
            }
        };
        Ok(Self {
            decoder,
            scaling_factor: info.scaling_factor,
            shift_factor: info.shift_factor,
        })
    }

    /// Raw latents `z` as the model sees them: `(z - shift) * scale`.
    pub fn to_model(&self, z: &Tensor) -> Result<Tensor> {
        Ok(z.f_sub_scalar(self.shift_factor)?
            .f_mul_scalar(self.scaling_factor)?)
    }

    /// Pixels in [-1, 1] of model-space latents.
    pub fn to_pixels(&self, x: &Tensor) -> Result<Tensor> {
        let z = x
            .f_div_scalar(self.scaling_factor)?
            .f_add_scalar(self.shift_factor)?;
        Ok(self.decoder.decode(&z)?.f_clamp(-1.0, 1.0)?)
    }
}
