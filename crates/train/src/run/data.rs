//! A run's data as everything after the loader sees it, for pixel-space runs (Fashion-MNIST,
//! MNIST) and latent-shard runs alike: the class names, the shape of the model's inputs, the
//! held-out inputs of the validation loss, model outputs as pixels, and the FID reference images.
//!
//! Latent runs decode through the autoencoder the shards were encoded with (its weights' hash
//! checked against the manifest). Their FID reference is the val split decoded from its posterior
//! means, so FID measures the generator, not the autoencoder's reconstruction error.

use super::cond_source::CondSource;
use super::latent_data::LatentData;
use super::pixel_data::PixelData;
use crate::cond_input::CondInput;
use crate::config::{ConditioningConfig, ConditioningProviderKind, DataConfig, DatasetKind};
use crate::error::{Result, TrainError};
use flowscale_data::shards::ShardSplit;
use flowscale_data::{to_model_pixels, to_u8_pixels, LabeledImages};
use tch::{Device, Tensor};

pub enum RunData {
    Pixels(PixelData),
    /// Boxed: the latent variant holds the loader and the autoencoder.
    Latents(Box<LatentData>),
}

impl RunData {
    /// The data `[data]` names. A latent run's autoencoder is loaded on `device` only when
    /// `decodes` (the process that turns samples into pixels).
    pub fn open(
        data: &DataConfig,
        conditioning: &ConditioningConfig,
        device: Device,
        decodes: bool,
    ) -> Result<Self> {
        Ok(match data.dataset {
            DatasetKind::LatentShards => Self::Latents(Box::new(LatentData::open(
                data,
                conditioning,
                device,
                decodes,
            )?)),
            _ if conditioning.provider == ConditioningProviderKind::Text => {
                return Err(TrainError::Invalid(format!(
                    "conditioning.provider = \"text\" needs captioned latent shards; {:?} has \
                     class labels only",
                    data.dataset
                )))
            }
            _ => Self::Pixels(PixelData::load(data)?),
        })
    }

    /// What the data conditions on.
    pub fn cond_source(&self) -> &CondSource {
        match self {
            Self::Pixels(_) => &CondSource::Labels,
            Self::Latents(l) => &l.cond,
        }
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

    /// Channels of what the model sees (image or latent channels).
    pub fn channels(&self) -> i64 {
        match self {
            Self::Pixels(d) => d.channels(),
            Self::Latents(l) => l.channels(),
        }
    }

    /// Spatial size of what the model sees (pixels, or latents).
    pub fn side(&self) -> i64 {
        match self {
            Self::Pixels(d) => d.resolution,
            Self::Latents(l) => l.side(),
        }
    }

    /// The largest side of any training input (`side`, or with aspect buckets the longest
    /// bucket side): what the position grid must cover.
    pub fn max_side(&self) -> i64 {
        match self {
            Self::Pixels(d) => d.resolution,
            Self::Latents(l) => l.max_side(),
        }
    }

    /// `[H, W]` of the latents of each aspect bucket (empty without buckets).
    pub fn bucket_shapes(&self) -> Vec<[i64; 2]> {
        match self {
            Self::Pixels(_) => Vec::new(),
            Self::Latents(l) => l.bucket_shapes(),
        }
    }

    /// `[C, H, W]` of what the model generates.
    pub fn model_shape(&self) -> [i64; 3] {
        [self.channels(), self.side(), self.side()]
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

    /// The fixed validation inputs (model space) and their conditioning: the first `n`
    /// held-out samples.
    pub fn held_out(&self, n: usize, device: Device) -> Result<(Tensor, CondInput)> {
        match self {
            Self::Pixels(d) => {
                let (x, labels) = d.held_out(n, device)?;
                Ok((x, CondInput::Labels(labels)))
            }
            Self::Latents(l) => l.held_out(n, device),
        }
    }

    /// Model outputs `[B, C, h, w]` as pixels in [-1, 1] on the CPU; latent runs decode through
    /// their autoencoder in chunks.
    pub fn to_pixels(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Pixels(_) => Ok(x.f_to_device(Device::Cpu)?),
            Self::Latents(l) => l.decoder.to_cpu_pixels(x),
        }
    }

    /// The first `n` held-out images as u8, as the model sees them, and a description (the FID
    /// reference of a run's own data).
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
                let (x, _) = l.held_out(n, device)?;
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

    /// Train and held-out images with their class labels to fit a classifier on: the pixel
    /// data itself, or for labelled latent shards the first `max` samples of each split decoded
    /// by the run's autoencoder. `None` when the data has no labels.
    pub fn classifier_images(
        &self,
        max: usize,
        device: Device,
    ) -> Result<Option<(LabeledImages, LabeledImages)>> {
        let copy = |l: &LabeledImages| -> Result<LabeledImages> {
            let n = l.images.size()[0].min(max as i64);
            Ok(LabeledImages::new(
                l.images.f_narrow(0, 0, n)?,
                l.labels.f_narrow(0, 0, n)?,
                l.class_names.clone(),
            )?)
        };
        let decoded = |split: ShardSplit, l: &LatentData| -> Result<Option<LabeledImages>> {
            let Some((x, labels)) = l.labeled_latents(split, max, device)? else {
                return Ok(None);
            };
            let u8s = to_u8_pixels(&self.to_pixels(&x)?)?;
            Ok(Some(LabeledImages::new(
                u8s,
                labels,
                l.class_names().to_vec(),
            )?))
        };
        Ok(match self {
            Self::Pixels(d) => Some((copy(&d.train)?, copy(&d.held_out)?)),
            Self::Latents(l) => {
                match (decoded(ShardSplit::Train, l)?, decoded(ShardSplit::Val, l)?) {
                    (Some(t), Some(v)) => Some((t, v)),
                    _ => None,
                }
            }
        })
    }

    /// Labels of the first `n` held-out samples, when the data has labels.
    pub fn held_out_labels(&self, n: usize) -> Result<Option<Vec<i64>>> {
        match self {
            Self::Pixels(d) => {
                let n = d.held_out.labels.size()[0].min(n as i64);
                Ok(Some(Vec::<i64>::try_from(
                    &d.held_out.labels.f_narrow(0, 0, n)?,
                )?))
            }
            Self::Latents(l) => l.split_labels(ShardSplit::Val, n),
        }
    }

    /// Samples in the held-out split.
    pub fn held_out_len(&self) -> usize {
        match self {
            Self::Pixels(d) => d.held_out.labels.size()[0] as usize,
            Self::Latents(l) => l.held_out_len(ShardSplit::Val) as usize,
        }
    }
}
