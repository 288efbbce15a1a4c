//! The training and validation data of a run, from the config's `[data]` section.

use crate::config::{DataConfig, DatasetKind};
use crate::error::{Result, TrainError};
use flowscale_data::fashion_mnist::{self, Split};
use flowscale_data::{to_model_pixels, BatchSampler, LabeledImages, SamplerPosition};
use std::path::PathBuf;
use tch::{Device, Tensor};

/// Class-labelled pixel data held in memory as u8 and converted per batch.
#[derive(Debug)]
pub struct PixelData {
    pub train: LabeledImages,
    pub held_out: LabeledImages,
    /// Training resolution (square).
    pub resolution: i64,
}

impl PixelData {
    pub fn load(data: &DataConfig) -> Result<Self> {
        let (train, held_out) = match data.dataset {
            DatasetKind::FashionMnist | DatasetKind::Mnist => {
                let dir = match (&data.path, data.dataset) {
                    (Some(p), _) => PathBuf::from(p),
                    (None, DatasetKind::FashionMnist) => PathBuf::from(fashion_mnist::DEBIAN_DIR),
                    (None, _) => {
                        return Err(TrainError::Invalid(
                            "data.path: MNIST has no standard location here; set it to the \
                             folder holding the four IDX files"
                                .into(),
                        ))
                    }
                };
                let mut train = fashion_mnist::load(&dir, Split::Train)?;
                let mut test = fashion_mnist::load(&dir, Split::Test)?;
                if data.dataset == DatasetKind::Mnist {
                    let digits: Vec<String> = (0..10).map(|d| d.to_string()).collect();
                    train.class_names = digits.clone();
                    test.class_names = digits;
                }
                (train, test)
            }
            other => {
                return Err(TrainError::Invalid(format!(
                "data.dataset = {other:?} is not read directly by the trainer: precompute it into \
                     latent shards (flowscale precompute) and train with \"latent-shards\", or \
                     use \"fashion-mnist\" or \"mnist\""
            )))
            }
        };
        let resolution = i64::from(data.resolution);
        let [_, h, w] = train.image_shape();
        if h > resolution || w > resolution {
            return Err(TrainError::Invalid(format!(
                "data.resolution = {resolution} is smaller than the {h}x{w} images; \
                 pixel-space data is padded, not cropped"
            )));
        }
        Ok(Self {
            train,
            held_out,
            resolution,
        })
    }

    pub fn channels(&self) -> i64 {
        self.train.image_shape()[0]
    }

    pub fn classes(&self) -> i64 {
        self.train.class_names.len() as i64
    }

    /// A sampler over the training split.
    pub fn sampler(&self, batch: usize, seed: u64, at: SamplerPosition) -> Result<BatchSampler> {
        Ok(BatchSampler::at(self.train.len(), batch, seed, at)?)
    }

    /// Model-ready pixels and labels of `indices` on `device`.
    pub fn batch(&self, indices: &Tensor, device: Device) -> Result<(Tensor, Tensor)> {
        let (u8s, labels) = self.train.select(indices)?;
        self.prepare(&u8s, &labels, device)
    }

    /// The first `n` held-out samples, model-ready.
    pub fn held_out(&self, n: usize, device: Device) -> Result<(Tensor, Tensor)> {
        let head = self.held_out.head(n)?;
        self.prepare(&head.images, &head.labels, device)
    }

    fn prepare(&self, u8s: &Tensor, labels: &Tensor, device: Device) -> Result<(Tensor, Tensor)> {
        let x = to_model_pixels(u8s, (self.resolution, self.resolution))?;
        Ok((x.f_to_device(device)?, labels.f_to_device(device)?))
    }
}
