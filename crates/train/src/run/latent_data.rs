//! Training on latent shards (`data.dataset = "latent-shards"`): the manifest, the streaming
//! loader of this rank, posterior sampling, and the fixed validation latents.

use super::decoder::PixelDecoder;
use crate::config::DataConfig;
use crate::error::{Result, TrainError};
use flowscale_core::FlowRng;
use flowscale_data::shards::{read_latent_shard, ShardManifest, ShardSplit};
use flowscale_data::{LatentShardLoader, LoaderConfig, LoaderPosition, ShardSource};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

pub struct LatentData {
    pub dir: PathBuf,
    pub manifest: ShardManifest,
    pub decoder: PixelDecoder,
    loader: Option<LatentShardLoader>,
}

impl LatentData {
    /// Reads and checks the manifest of `data.path` against the run; loads the autoencoder's
    /// decoder when `decodes` (the process that draws sample grids).
    pub fn open(data: &DataConfig, device: Device, decodes: bool) -> Result<Self> {
        let dir = PathBuf::from(data.path.as_deref().unwrap_or_default());
        let manifest = ShardManifest::load(&dir)?;
        let path = ShardManifest::path(&dir);
        if manifest.resolution != data.resolution {
            return Err(TrainError::Invalid(format!(
                "{}: the shards were encoded at resolution {}, data.resolution is {}",
                path.display(),
                manifest.resolution,
                data.resolution
            )));
        }
        if !manifest.has_labels {
            return Err(TrainError::Invalid(format!(
                "{}: the shards carry no class labels; the trainer conditions on classes \
                 (class embeddings or class captions)",
                path.display()
            )));
        }
        let folder = data.autoencoder_path.as_deref().map(Path::new);
        let decoder =
            PixelDecoder::for_autoencoder(&manifest.autoencoder, &path, folder, device, decodes)?;
        Ok(Self {
            dir,
            manifest,
            decoder,
            loader: None,
        })
    }

    pub fn channels(&self) -> i64 {
        self.manifest.latent_shape[0]
    }

    /// Latent height = width.
    pub fn side(&self) -> i64 {
        self.manifest.latent_shape[1]
    }

    pub fn class_names(&self) -> &[String] {
        &self.manifest.class_names
    }

    /// Starts this rank's loader over the train split with batches of `batch` samples, at
    /// `position` when resuming.
    pub fn start(
        &mut self,
        d: &DataConfig,
        batch: usize,
        (rank, world): (usize, usize),
        seed: u64,
        device: Device,
        position: Option<&LoaderPosition>,
    ) -> Result<()> {
        let loader_cfg = LoaderConfig {
            rank,
            world_size: world,
            shuffle_buffer: d.shuffle_buffer.unwrap_or(1000) as usize,
            workers: d.workers.unwrap_or(2) as usize,
            prefetch: d.prefetch.unwrap_or(4) as usize,
            pin_memory: device.is_cuda(),
            skip_bad_shards: d.skip_bad_shards,
            latent_shape: Some(self.manifest.latent_shape),
            ..LoaderConfig::new(
                ShardSource::from_manifest(&self.dir, &self.manifest, ShardSplit::Train),
                batch,
                seed,
            )
        };
        self.loader = Some(match position {
            Some(p) => LatentShardLoader::at(loader_cfg, p)?,
            None => LatentShardLoader::new(loader_cfg)?,
        });
        Ok(())
    }

    fn loader(&mut self) -> &mut LatentShardLoader {
        self.loader.as_mut().expect("started in Trainer::new")
    }

    /// The next batch of this rank: model-space latents sampled from the posterior
    /// (`mean + std * eps`, the flipped image's moments for a random half when stored) and
    /// labels, both on `device`. Every draw comes from `rng`.
    pub fn next(&mut self, rng: &mut FlowRng, device: Device) -> Result<(Tensor, Tensor)> {
        let batch = self.loader().next_batch()?;
        let to = |t: &Tensor| t.f_to_device_(device, Kind::Float, true, false);
        let b = batch.keys.len();
        let (mut mean, mut std) = (to(&batch.mean)?, to(&batch.std)?);
        if let Some((fm, fs)) = &batch.flip {
            let pick: Vec<bool> = (0..b).map(|_| rng.uniform() < 0.5).collect();
            let pick = Tensor::f_from_slice(&pick)?
                .f_to_device(device)?
                .f_view([b as i64, 1, 1, 1])?;
            mean = to(fm)?.f_where_self(&pick, &mean)?;
            std = to(fs)?.f_where_self(&pick, &std)?;
        }
        let eps = flowscale_formulations::with_torch_seed((rng.next_u64() >> 1) as i64, || {
            Tensor::f_randn(mean.size().as_slice(), (Kind::Float, device))
        })?;
        let z = mean.f_add(&std.f_mul(&eps)?)?;
        let labels = batch.labels.as_ref().ok_or_else(|| {
            TrainError::corrupt(
                &self.dir,
                format!("a batch without labels (sample {})", batch.keys[0]),
            )
        })?;
        Ok((self.decoder.to_model(&z)?, labels.f_to_device(device)?))
    }

    /// The loader's position (after the last batch taken).
    pub fn position(&self) -> Option<LoaderPosition> {
        self.loader.as_ref().map(|l| l.position().clone())
    }

    /// The first `n` samples of the val split in manifest order, as posterior means (fixed
    /// data; the fixed noise comes with the validation set), model-space, and their labels.
    pub fn held_out(&self, n: usize, device: Device) -> Result<(Tensor, Tensor)> {
        let shards = self.manifest.shards(ShardSplit::Val);
        let path = ShardManifest::path(&self.dir);
        if shards.is_empty() {
            return Err(TrainError::Invalid(format!(
                "{}: no val split; validation needs held-out shards (splits.val)",
                path.display()
            )));
        }
        let (mut means, mut labels) = (Vec::new(), Vec::new());
        for s in shards {
            if means.len() == n {
                break;
            }
            let shard = self.dir.join(&s.file);
            for sample in read_latent_shard(&shard)?.into_iter().take(n - means.len()) {
                let label = sample.label.ok_or_else(|| {
                    TrainError::corrupt(&shard, format!("sample {} has no label", sample.key))
                })?;
                means.push(sample.mean.f_to_kind(Kind::Float)?);
                labels.push(label);
            }
        }
        if means.len() < n {
            return Err(TrainError::Invalid(format!(
                "{}: the val split holds {} samples, validation.samples is {n}",
                path.display(),
                means.len()
            )));
        }
        let x = self
            .decoder
            .to_model(&Tensor::f_stack(&means, 0)?.f_to_device(device)?)?;
        Ok((x, Tensor::f_from_slice(&labels)?.f_to_device(device)?))
    }
}
