//! The narrow hook the trainer needs from an autoencoder: latents back to pixels, for sample
//! grids and anything else that shows images of a latent-space run.
//!
//! The model works on scaled latents `(z - shift_factor) * scaling_factor`; [`PixelDecoder`]
//! undoes the scaling and hands raw latents `z` to the autoencoder's decoder, which returns
//! pixels in [-1, 1]. Pixel-space shards use the identity autoencoder; the others
//! (`flowscale_encoders::autoencoders`) are loaded from the folder the manifest records.

use crate::error::{Result, TrainError};
use flowscale_data::shards::AutoencoderInfo;
use flowscale_encoders::autoencoders::{Autoencoder, AutoencoderSpec};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// Samples decoded to pixels at once: a VAE decoder's activations at 256^2 are large.
const DECODE_CHUNK: i64 = 16;

/// What turns raw (unscaled) latents `[B, C, h, w]` into pixels `[B, 3 or 1, H, W]`.
enum Decoding {
    /// Pixel space: the latents are the images (any channel count, so not the identity
    /// autoencoder, which takes RGB only).
    Identity,
    /// A real autoencoder's decoder.
    Autoencoder(Box<dyn Autoencoder>),
    /// Not loaded: this process never decodes (data-parallel ranks other than 0).
    NotLoaded,
}

/// A decoder with the scaling of the latents the model sees.
pub struct PixelDecoder {
    decoding: Decoding,
    scaling_factor: f64,
    shift_factor: f64,
}

impl PixelDecoder {
    /// Pixel-space data: nothing to undo.
    pub fn identity() -> Self {
        Self {
            decoding: Decoding::Identity,
            scaling_factor: 1.0,
            shift_factor: 0.0,
        }
    }

    /// The decoder of the autoencoder a shard manifest names (`manifest` in errors), loaded on
    /// `device` from `folder` or, by default, the folder the manifest records. Its weights must
    /// hash to the manifest's `weights_sha256`: other weights would decode other images. With
    /// `load` false only the scaling is kept ([`PixelDecoder::to_model`]) and nothing is read.
    pub fn for_autoencoder(
        info: &AutoencoderInfo,
        manifest: &Path,
        folder: Option<&Path>,
        device: Device,
        load: bool,
    ) -> Result<Self> {
        let decoding = if info.kind == "identity" {
            Decoding::Identity
        } else if !load {
            Decoding::NotLoaded
        } else {
            let path = folder.map_or_else(|| PathBuf::from(&info.name), Path::to_path_buf);
            let spec = AutoencoderSpec::new(&info.kind, Some(path.clone()))
                .map_err(|(_, e)| TrainError::corrupt(manifest, e))?;
            let ae = spec.load(Kind::Float, device).map_err(|e| {
                TrainError::Invalid(format!(
                    "{}: the shards' {} autoencoder {}: {e} (set data.autoencoder_path to its \
                     folder)",
                    manifest.display(),
                    info.kind,
                    path.display()
                ))
            })?;
            if let Some(want) = &info.weights_sha256 {
                let have = ae.weights_sha256()?;
                if !have.eq_ignore_ascii_case(want) {
                    return Err(TrainError::Invalid(format!(
                        "{}: the autoencoder in {} has weights sha256 {have}, the shards were \
                         encoded by {want}",
                        manifest.display(),
                        path.display()
                    )));
                }
            }
            Decoding::Autoencoder(ae)
        };
        Ok(Self {
            decoding,
            scaling_factor: info.scaling_factor,
            shift_factor: info.shift_factor,
        })
    }

    /// The decoder of the autoencoder `spec` names, loaded on `device`, with the scaling its
    /// weights define: generation from an exported backbone, which records no shard manifest.
    /// The scaling must be one pair for all channels, as a shard manifest records it (what
    /// precompute encoded the training latents with).
    pub fn for_spec(spec: &AutoencoderSpec, device: Device) -> Result<Self> {
        if *spec == AutoencoderSpec::Identity {
            return Ok(Self::identity());
        }
        let folder = spec
            .path()
            .map_or_else(String::new, |p| p.display().to_string());
        let ae = spec.load(Kind::Float, device).map_err(|e| {
            TrainError::Invalid(format!(
                "the {} autoencoder {folder}: {e}",
                spec.kind_name()
            ))
        })?;
        let (shift_factor, scaling_factor) = ae.uniform_normalization().ok_or_else(|| {
            TrainError::Invalid(format!(
                "the {} autoencoder {folder} has per-channel latents_mean/latents_std; flowscale \
                 trains on latents with one scaling and shift factor for all channels",
                spec.kind_name()
            ))
        })?;
        Ok(Self {
            decoding: Decoding::Autoencoder(ae),
            scaling_factor,
            shift_factor,
        })
    }

    /// The same decoder with the model's latents `(z - shift) * scale` (the data's statistics
    /// instead of the autoencoder's constants).
    pub fn with_normalization(self, shift: f64, scale: f64) -> Self {
        Self {
            shift_factor: shift,
            scaling_factor: scale,
            ..self
        }
    }

    /// Latent channels the decoder takes; `None` for pixel space (any channel count).
    pub fn latent_channels(&self) -> Option<i64> {
        match &self.decoding {
            Decoding::Autoencoder(ae) => Some(ae.latent_channels()),
            Decoding::Identity | Decoding::NotLoaded => None,
        }
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
        let pixels = match &self.decoding {
            Decoding::Identity => z,
            Decoding::Autoencoder(ae) => ae.decode_raw(&z)?,
            Decoding::NotLoaded => {
                return Err(TrainError::Invalid(
                    "this process did not load the autoencoder: only data-parallel rank 0 \
                     decodes samples"
                        .into(),
                ))
            }
        };
        Ok(pixels.f_clamp(-1.0, 1.0)?)
    }

    /// [`PixelDecoder::to_pixels`] of at most [`DECODE_CHUNK`] samples at a time, collected on
    /// the CPU.
    pub fn to_cpu_pixels(&self, x: &Tensor) -> Result<Tensor> {
        let mut parts = Vec::new();
        for chunk in x.f_split(DECODE_CHUNK, 0)? {
            parts.push(self.to_pixels(&chunk)?.f_to_device(Device::Cpu)?);
        }
        Ok(Tensor::f_cat(&parts, 0)?)
    }
}
