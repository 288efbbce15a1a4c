//! Where training batches come from: in-memory pixels with the resumable batch sampler, or the
//! streaming latent-shard loader.

use super::data_source::PixelData;
use super::latent_data::LatentData;
use crate::config::{DatasetKind, RunConfig};
use crate::error::Result;
use crate::latent_decoder::PixelDecoder;
use flowscale_data::BatchSampler;
use tch::{Device, Tensor};

pub enum Feed {
    Pixels {
        data: PixelData,
        /// Set once the resume position is known.
        sampler: Option<BatchSampler>,
        decoder: PixelDecoder,
    },
    /// Boxed: the loader state is much larger than the pixel variant.
    Latents(Box<LatentData>),
}

impl Feed {
    /// The run's data; `decodes` when this process draws sample grids (only then is a latent
    /// run's autoencoder loaded).
    pub fn load(cfg: &RunConfig, device: Device, decodes: bool) -> Result<Self> {
        Ok(match cfg.data.dataset {
            DatasetKind::LatentShards => {
                Self::Latents(Box::new(LatentData::open(cfg, device, decodes)?))
            }
            _ => Self::Pixels {
                data: PixelData::load(cfg)?,
                sampler: None,
                decoder: PixelDecoder::identity(),
            },
        })
    }

    /// Channels of what the model sees (image or latent channels).
    pub fn channels(&self) -> i64 {
        match self {
            Self::Pixels { data, .. } => data.channels(),
            Self::Latents(l) => l.channels(),
        }
    }

    /// Spatial size of what the model sees.
    pub fn side(&self) -> i64 {
        match self {
            Self::Pixels { data, .. } => data.resolution,
            Self::Latents(l) => l.side(),
        }
    }

    pub fn class_names(&self) -> &[String] {
        match self {
            Self::Pixels { data, .. } => &data.train.class_names,
            Self::Latents(l) => l.class_names(),
        }
    }

    /// Fixed validation data, model-ready, and labels.
    pub fn held_out(&self, n: usize, device: Device) -> Result<(Tensor, Tensor)> {
        match self {
            Self::Pixels { data, .. } => data.held_out(n, device),
            Self::Latents(l) => l.held_out(n, device),
        }
    }

    /// Model-space samples to pixels in [-1, 1].
    pub fn decoder(&self) -> &PixelDecoder {
        match self {
            Self::Pixels { decoder, .. } => decoder,
            Self::Latents(l) => &l.decoder,
        }
    }
}
