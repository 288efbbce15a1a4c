//! Training on latent shards (`data.dataset = "latent-shards"`): the manifest, the streaming
//! loader of this rank, posterior sampling, what each sample is conditioned on (its label or its
//! caption), and the fixed validation latents. A shard set in aspect buckets (manifest format 3)
//! is read by the bucketed loader, one bucket per batch; validation, sample grids and the
//! classifier data then use the square bucket of the manifest's resolution only.

use super::cond_source::CondSource;
use super::decoder::PixelDecoder;
use crate::cond_input::{CondInput, TextBatch};
use crate::config::{ConditioningConfig, DataConfig, LatentNormalization};
use crate::error::{Result, TrainError};
use flowscale_core::FlowRng;
use flowscale_data::shards::loader::{BucketedLoader, BucketedPosition};
use flowscale_data::shards::{read_latent_shard, LatentSample, ShardManifest, ShardSplit};
use flowscale_data::{LatentShardLoader, LoaderConfig, LoaderPosition, ShardSource};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

pub struct LatentData {
    pub dir: PathBuf,
    pub manifest: ShardManifest,
    pub decoder: PixelDecoder,
    pub cond: CondSource,
    /// With buckets: the index of the `resolution` square bucket, the one validation and
    /// sample grids use.
    square_bucket: Option<u32>,
    loader: Option<Loader>,
}

/// This rank's training stream.
enum Loader {
    Plain(LatentShardLoader),
    Bucketed(BucketedLoader),
}

/// Where a rank's training stream stands, as saved in checkpoints.
pub enum LatentPosition {
    Plain(LoaderPosition),
    Bucketed(BucketedPosition),
}

impl LatentData {
    /// Reads and checks the manifest of `data.path` against the run; loads the autoencoder's
    /// decoder when `decodes` (the process that draws sample grids).
    pub fn open(
        data: &DataConfig,
        conditioning: &ConditioningConfig,
        device: Device,
        decodes: bool,
    ) -> Result<Self> {
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
        let square_bucket = if manifest.buckets.is_empty() {
            None
        } else {
            let r = manifest.resolution;
            let found = manifest
                .buckets
                .iter()
                .position(|b| b.width == r && b.height == r);
            Some(found.ok_or_else(|| {
                TrainError::Invalid(format!(
                    "{}: the shards are in aspect buckets without the {r}x{r} square; \
                     validation and sample grids use the square bucket of the resolution, so \
                     add it to preprocess.buckets.sizes",
                    path.display()
                ))
            })? as u32)
        };
        let cond = CondSource::for_shards(conditioning, &manifest, &path)?;
        let folder = data.autoencoder_path.as_deref().map(Path::new);
        let mut decoder =
            PixelDecoder::for_autoencoder(&manifest.autoencoder, &path, folder, device, decodes)?;
        if data.latent_normalization == LatentNormalization::Data {
            let stats = manifest.latent_stats.as_ref().ok_or_else(|| {
                TrainError::Invalid(format!(
                    "{}: data.latent_normalization = \"data\" needs the train split's latent \
                     statistics, which this manifest (format {}) does not record; run \
                     flowscale precompute again to write them",
                    path.display(),
                    manifest.format_version
                ))
            })?;
            decoder = decoder.with_normalization(stats.mean, 1.0 / stats.std);
        }
        Ok(Self {
            dir,
            manifest,
            decoder,
            cond,
            square_bucket,
            loader: None,
        })
    }

    /// The largest latent side of any batch (the square side, or the longest bucket side): the
    /// position grid must cover it.
    pub fn max_side(&self) -> i64 {
        (0..self.manifest.buckets.len() as u32)
            .map(|b| {
                let [_, h, w] = self.manifest.latent_shape_of(Some(b));
                h.max(w)
            })
            .fold(self.side(), i64::max)
    }

    /// `[H, W]` of the latents of every bucket (empty without buckets).
    pub fn bucket_shapes(&self) -> Vec<[i64; 2]> {
        (0..self.manifest.buckets.len() as u32)
            .map(|b| {
                let [_, h, w] = self.manifest.latent_shape_of(Some(b));
                [h, w]
            })
            .collect()
    }

    /// The shards of `split` that validation and sample grids read: all, or the square
    /// bucket's.
    fn square_shards(&self, split: ShardSplit) -> Vec<&flowscale_data::shards::ShardEntry> {
        self.manifest
            .shards(split)
            .iter()
            .filter(|s| s.bucket == self.square_bucket)
            .collect()
    }

    /// Samples of `split` that validation reads.
    pub fn held_out_len(&self, split: ShardSplit) -> u64 {
        self.square_shards(split).iter().map(|s| s.samples).sum()
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
    /// `position` when resuming. With aspect buckets, each `accum` consecutive batches (the
    /// micro-batches of one optimiser step) come from one bucket.
    pub fn start(
        &mut self,
        d: &DataConfig,
        (batch, accum): (usize, u64),
        (rank, world): (usize, usize),
        seed: u64,
        device: Device,
        position: Option<&LatentPosition>,
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
        // A run resumes only on shards of the kind it was trained on.
        let saved_kind = |saved: &str, now: &str| {
            TrainError::Invalid(format!(
                "the checkpoint holds the position of a {saved} shard loader, but {} is a \
                 {now} shard set; resume on the shards the run was trained on",
                self.dir.display()
            ))
        };
        self.loader = Some(if self.square_bucket.is_some() {
            let saved = match position {
                None => None,
                Some(LatentPosition::Bucketed(p)) => Some(p),
                Some(LatentPosition::Plain(_)) => return Err(saved_kind("plain", "bucketed")),
            };
            let loader = BucketedLoader::new(&self.dir, &self.manifest, &loader_cfg, accum, saved)?;
            if rank == 0 {
                for why in loader.left_out() {
                    eprintln!("aspect buckets: left out of training: {why}");
                }
            }
            Loader::Bucketed(loader)
        } else {
            Loader::Plain(match position {
                None => LatentShardLoader::new(loader_cfg)?,
                Some(LatentPosition::Plain(p)) => LatentShardLoader::at(loader_cfg, p)?,
                Some(LatentPosition::Bucketed(_)) => return Err(saved_kind("bucketed", "plain")),
            })
        });
        Ok(())
    }

    /// The next batch of this rank: model-space latents sampled from the posterior
    /// (`mean + std * eps`, the flipped image's moments for a random half when stored) and what
    /// each sample is conditioned on (its label, or the caption of a field drawn by the caption
    /// mix), on `device`. Every draw comes from `rng`.
    pub fn next(&mut self, rng: &mut FlowRng, device: Device) -> Result<(Tensor, CondInput)> {
        let batch = match self.loader.as_mut().expect("started in Trainer::new") {
            Loader::Plain(l) => l.next_batch()?,
            Loader::Bucketed(l) => l.next_batch()?.1,
        };
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
        let cond = match &self.cond {
            CondSource::Labels => {
                let labels = batch.labels.as_ref().ok_or_else(|| {
                    TrainError::corrupt(
                        &self.dir,
                        format!("a batch without labels (sample {})", batch.keys[0]),
                    )
                })?;
                self.check_labels(&Vec::<i64>::try_from(labels)?, &batch.keys)?;
                CondInput::Labels(labels.f_to_device(device)?)
            }
            CondSource::Text(t) => {
                let pick = t.draw_fields(b, rng);
                t.pick(&batch.captions, &pick, device).map_err(|e| {
                    TrainError::corrupt(&self.dir, format!("sample {}: {e}", batch.keys[0]))
                })?
            }
        };
        Ok((self.decoder.to_model(&z)?, cond))
    }

    /// Labels must index the manifest's class names: checked here, on the host copy, so the
    /// device never waits for it and a bad shard is named instead of failing in an index.
    fn check_labels(&self, values: &[i64], keys: &[String]) -> Result<()> {
        let classes = self.manifest.class_names.len() as i64;
        if let Some((i, l)) = values
            .iter()
            .enumerate()
            .find(|(_, &l)| l < 0 || l >= classes)
        {
            return Err(TrainError::corrupt(
                ShardManifest::path(&self.dir),
                format!(
                    "sample {}: label {l} is not one of the manifest's {classes} classes (0..{})",
                    keys[i],
                    classes - 1
                ),
            ));
        }
        Ok(())
    }

    /// The loader's position (after the last batch taken).
    pub fn position(&self) -> Option<LatentPosition> {
        self.loader.as_ref().map(|l| match l {
            Loader::Plain(l) => LatentPosition::Plain(l.position().clone()),
            Loader::Bucketed(l) => LatentPosition::Bucketed(l.position()),
        })
    }

    /// The first `n` samples of `split` in manifest order (fewer when the split is smaller),
    /// each with the shard it came from (for messages).
    fn first_samples(&self, split: ShardSplit, n: usize) -> Result<Vec<(PathBuf, LatentSample)>> {
        let mut out = Vec::new();
        for s in self.square_shards(split) {
            if out.len() >= n {
                break;
            }
            let shard = self.dir.join(&s.file);
            let take = n - out.len();
            for sample in read_latent_shard(&shard)?.into_iter().take(take) {
                out.push((shard.clone(), sample));
            }
        }
        Ok(out)
    }

    /// The labels of the first `n` samples of `split` in manifest order (`None` when the shards
    /// carry none).
    pub fn split_labels(&self, split: ShardSplit, n: usize) -> Result<Option<Vec<i64>>> {
        if !self.manifest.has_labels {
            return Ok(None);
        }
        let samples = self.first_samples(split, n)?;
        let labels = samples
            .iter()
            .map(|(shard, s)| label_of(shard, s))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(labels))
    }

    /// The posterior means (model space, on `device`) and labels of the first `n` samples of
    /// `split`: images of known class to fit a classifier on once decoded.
    pub fn labeled_latents(
        &self,
        split: ShardSplit,
        n: usize,
        device: Device,
    ) -> Result<Option<(Tensor, Tensor)>> {
        if !self.manifest.has_labels {
            return Ok(None);
        }
        let samples = self.first_samples(split, n)?;
        if samples.is_empty() {
            return Ok(None);
        }
        let (mut means, mut labels) = (Vec::new(), Vec::new());
        for (shard, sample) in &samples {
            labels.push(label_of(shard, sample)?);
            means.push(sample.mean.f_to_kind(Kind::Float)?);
        }
        let x = self
            .decoder
            .to_model(&Tensor::f_stack(&means, 0)?.f_to_device(device)?)?;
        Ok(Some((x, Tensor::f_from_slice(&labels)?)))
    }

    /// The first `n` samples of the val split in manifest order, as posterior means (fixed
    /// data; the fixed noise comes with the validation set), model-space, and their labels or
    /// captions (of the first field the caption mix draws).
    pub fn held_out(&self, n: usize, device: Device) -> Result<(Tensor, CondInput)> {
        let shards = self.square_shards(ShardSplit::Val);
        let path = ShardManifest::path(&self.dir);
        if shards.is_empty() {
            return Err(TrainError::Invalid(format!(
                "{}: no val split; validation needs held-out shards (splits.val)",
                path.display()
            )));
        }
        let field = match &self.cond {
            CondSource::Text(t) => Some(t.fields[t.fixed_field()].clone()),
            CondSource::Labels => None,
        };
        let (mut means, mut labels, mut texts, mut embeddings, mut keys) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (shard, sample) in self.first_samples(ShardSplit::Val, n)? {
            match &field {
                None => labels.push(label_of(&shard, &sample)?),
                Some(f) => {
                    let c = sample.caption(f).ok_or_else(|| {
                        TrainError::corrupt(
                            &shard,
                            format!("sample {} has no caption {f}", sample.key),
                        )
                    })?;
                    texts.push(c.text.clone());
                    if let Some((ctx, p)) = &c.embedding {
                        embeddings.push((ctx.shallow_clone(), p.shallow_clone()));
                    }
                }
            }
            means.push(sample.mean.f_to_kind(Kind::Float)?);
            keys.push(sample.key);
        }
        if field.is_none() {
            self.check_labels(&labels, &keys)?;
        }
        if means.len() < n {
            let r = self.manifest.resolution;
            let which = match self.square_bucket {
                Some(_) => format!("the val split's {r}x{r} bucket (what validation reads)"),
                None => "the val split".to_owned(),
            };
            return Err(TrainError::Invalid(format!(
                "{}: {which} holds {} samples, validation.samples is {n}",
                path.display(),
                means.len()
            )));
        }
        let x = self
            .decoder
            .to_model(&Tensor::f_stack(&means, 0)?.f_to_device(device)?)?;
        let cond = match &self.cond {
            CondSource::Labels => {
                CondInput::Labels(Tensor::f_from_slice(&labels)?.f_to_device(device)?)
            }
            CondSource::Text(t) => {
                let embedding = if t.embedded.is_some() {
                    if embeddings.len() != means.len() {
                        return Err(TrainError::corrupt(
                            &path,
                            "val samples without stored text embeddings",
                        ));
                    }
                    let (c, p): (Vec<Tensor>, Vec<Tensor>) = embeddings.into_iter().unzip();
                    Some((
                        Tensor::f_stack(&c, 0)?.f_to_device(device)?,
                        Tensor::f_stack(&p, 0)?.f_to_device(device)?,
                    ))
                } else {
                    None
                };
                let captions: Option<Vec<String>> = texts.into_iter().collect();
                if embedding.is_none() && captions.is_none() {
                    return Err(TrainError::corrupt(
                        &path,
                        "val samples without caption text",
                    ));
                }
                CondInput::Text(TextBatch {
                    captions,
                    embedding,
                })
            }
        };
        Ok((x, cond))
    }
}

/// The label of `sample` of `shard`, which must have one.
fn label_of(shard: &Path, sample: &LatentSample) -> Result<i64> {
    sample
        .label
        .ok_or_else(|| TrainError::corrupt(shard, format!("sample {} has no label", sample.key)))
}
