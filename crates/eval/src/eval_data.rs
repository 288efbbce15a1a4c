//! What an evaluation needs of a run's data, for pixel-space runs (Fashion-MNIST, image folders)
//! and latent-shard runs alike: the class names, the shape of the model's inputs, the held-out
//! inputs of the validation loss, model outputs as pixels, and the FID reference images.
//!
//! Latent runs decode through the autoencoder the shards were encoded with (its weights' hash
//! checked against the manifest). Their FID reference is the val split decoded from its posterior
//! means, so FID measures the generator, not the autoencoder's reconstruction error.

use crate::error::{EvalError, Result};
use flowscale_data::{to_model_pixels, to_u8_pixels, LabeledImages};
use flowscale_train::config::{DatasetKind, RunConfig};
use flowscale_train::trainer::{LatentData, PixelData};
use tch::{Device, Tensor};

pub enum EvalData {
    Pixels(PixelData),
    /// Boxed: the latent variant holds the autoencoder.
    Latents(Box<LatentData>),
}

fn invalid(e: impl std::fmt::Display) -> EvalError {
    EvalError::Invalid(format!("run data: {e}"))
}

impl EvalData {
    /// The run's data, as its config names it; autoencoders load on `device`.
    pub fn load(cfg: &RunConfig, device: Device) -> Result<Self> {
        Ok(match cfg.data.dataset {
            DatasetKind::LatentShards => Self::Latents(Box::new(
                LatentData::open(cfg, device, true).map_err(invalid)?,
            )),
            _ => Self::Pixels(PixelData::load(cfg).map_err(invalid)?),
        })
    }

    pub fn class_names(&self) -> &[String] {
        match self {
            Self::Pixels(d) => &d.train.class_names,
            Self::Latents(l) => l.class_names(),
        }
    }

    pub fn classes(&self) -> i64 {
        self.class_names().len() as i64
    }

    /// Square resolution of the images, in pixels.
    pub fn resolution(&self) -> i64 {
        match self {
            Self::Pixels(d) => d.resolution,
            Self::Latents(l) => i64::from(l.manifest.resolution),
        }
    }

    /// Channels of the images (decoded images for latent runs).
    pub fn image_channels(&self) -> i64 {
        match self {
            Self::Pixels(d) => d.channels(),
            Self::Latents(_) => 3,
        }
    }

    /// `[C, H, W]` of what the model generates: pixels, or latents.
    pub fn model_shape(&self) -> [i64; 3] {
        match self {
            Self::Pixels(d) => [d.channels(), d.resolution, d.resolution],
            Self::Latents(l) => [l.channels(), l.side(), l.side()],
        }
    }

    /// The trainer's fixed validation inputs (model space) and labels.
    pub fn held_out(&self, n: usize, device: Device) -> Result<(Tensor, Tensor)> {
        match self {
            Self::Pixels(d) => d.held_out(n, device).map_err(invalid),
            Self::Latents(l) => l.held_out(n, device).map_err(invalid),
        }
    }

    /// Model outputs `[B, C, h, w]` as pixels in [-1, 1] on the CPU.
    pub fn to_pixels(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Pixels(_) => Ok(x.shallow_clone()),
            Self::Latents(l) => {
                // In chunks: a VAE decoder's activations at 256^2 are large.
                let mut parts = Vec::new();
                for chunk in x.f_split(16, 0)? {
                    let p = l.decoder.to_pixels(&chunk).map_err(invalid)?;
                    parts.push(p.f_to_device(Device::Cpu)?);
                }
                Ok(Tensor::f_cat(&parts, 0)?)
            }
        }
    }

    /// The first `n` held-out images as u8, as the model sees them, and a description.
    pub fn reference_u8(&self, n: usize, device: Device) -> Result<(Tensor, String)> {
        let res = self.resolution();
        match self {
            Self::Pixels(d) => {
                let head = d.held_out.head(n)?;
                // Padded to the training resolution, then back to u8.
                let u8s = to_u8_pixels(&to_model_pixels(&head.images, (res, res))?)?;
                let m = u8s.size()[0];
                Ok((
                    u8s,
                    format!("held-out split, first {m} images at {res}x{res}"),
                ))
            }
            Self::Latents(l) => {
                let (x, _) = l.held_out(n, device).map_err(invalid)?;
                let u8s = to_u8_pixels(&self.to_pixels(&x)?)?;
                let m = u8s.size()[0];
                Ok((
                    u8s,
                    format!(
                        "val split of {}, first {m} posterior means decoded by the {} \
                         autoencoder at {res}x{res}",
                        l.dir.display(),
                        l.manifest.autoencoder.kind
                    ),
                ))
            }
        }
    }

    /// Train and held-out images to fit a classifier on (pixel runs only).
    pub fn classifier_images(&self) -> Option<(&LabeledImages, &LabeledImages)> {
        match self {
            Self::Pixels(d) => Some((&d.train, &d.held_out)),
            Self::Latents(_) => None,
        }
    }
}
