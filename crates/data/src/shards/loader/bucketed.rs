//! Training batches from a shard set in aspect-ratio buckets: every batch comes from one bucket,
//! so its latents share a shape.
//!
//! - The bucket of global batch `s` is drawn by a generator seeded from (seed, s), with
//!   probability proportional to the bucket's train samples ([`BucketSchedule`]): a pure
//!   function of the seed and the step, so every data-parallel rank draws the same bucket for a
//!   step without talking to the others, and a resumed run draws what the uninterrupted one
//!   would have. A global batch is `group` consecutive loader batches (the micro-batches of one
//!   optimiser step), all from its bucket.
//! - Each bucket has its own [`LatentShardLoader`] over the bucket's shards, with its own seed,
//!   shuffled and split across ranks as an unbucketed set is; a batch of bucket b takes the next
//!   batch of b's stream.
//! - [`BucketedPosition`] holds the step and every bucket stream's [`LoaderPosition`]: resuming
//!   restores each stream exactly.
//! - A bucket that cannot give every rank a batch (fewer shards than ranks, or too few samples
//!   for one batch on some rank) is left out of the schedule and listed by
//!   [`BucketedLoader::left_out`].

use super::{LatentBatch, LatentShardLoader, LoaderConfig, LoaderPosition, ShardSource};
use crate::error::{DataError, Result};
use crate::shards::manifest::{ShardManifest, ShardSplit};
use flowscale_core::FlowRng;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Which bucket each global batch is drawn from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketSchedule {
    seed: u64,
    /// Train samples per bucket; 0 for a bucket left out.
    weights: Vec<u64>,
}

impl BucketSchedule {
    /// A schedule over buckets with these sample counts; at least one must be positive.
    pub fn new(seed: u64, weights: Vec<u64>) -> Result<Self> {
        if weights.iter().all(|&w| w == 0) {
            return Err(DataError::Invalid(
                "bucket schedule: no bucket can give a batch".into(),
            ));
        }
        Ok(Self { seed, weights })
    }

    /// The bucket of global batch `step`.
    pub fn bucket_of(&self, step: u64) -> usize {
        let total: u64 = self.weights.iter().sum();
        let mut rng = FlowRng::new(mix(self.seed ^ 0xb0c4_e75c, step));
        let mut pick = rng.below(total);
        for (i, &w) in self.weights.iter().enumerate() {
            if pick < w {
                return i;
            }
            pick -= w;
        }
        unreachable!("pick < total = sum of the weights")
    }
}

fn mix(a: u64, b: u64) -> u64 {
    a ^ b
        .wrapping_add(0x9E37_79B9_7F4A_7C15)
        .wrapping_mul(0xBF58_476D_1CE4_E5B9)
        .rotate_left(31)
}

/// The exact position of a [`BucketedLoader`], saved in checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketedPosition {
    /// Batches yielded so far (the next batch's global batch in the schedule is
    /// `batches / group`).
    pub batches: u64,
    /// Each bucket stream's position; `None` for a bucket left out of the schedule.
    pub buckets: Vec<Option<LoaderPosition>>,
}

/// One bucket per batch over a bucketed shard set's train split.
pub struct BucketedLoader {
    schedule: BucketSchedule,
    /// Loader batches per global batch.
    group: u64,
    loaders: Vec<Option<LatentShardLoader>>,
    batches: u64,
    left_out: Vec<String>,
}

impl BucketedLoader {
    /// A loader over the buckets of `manifest` (in `dir`), at `position` when resuming. `base`
    /// gives everything but the shards and the latent shape (its `shards` are ignored); each
    /// bucket's stream is seeded from `base.seed` and the bucket index. `group` consecutive
    /// batches share a bucket (the micro-batches of one optimiser step; 1 without
    /// accumulation).
    pub fn new(
        dir: &Path,
        manifest: &ShardManifest,
        base: &LoaderConfig,
        group: u64,
        position: Option<&BucketedPosition>,
    ) -> Result<Self> {
        let n = manifest.buckets.len();
        if group == 0 {
            return Err(DataError::Invalid(
                "bucketed loader: batches per bucket draw must be >= 1".into(),
            ));
        }
        if n == 0 {
            return Err(DataError::Invalid(format!(
                "{}: the shard set has no buckets",
                ShardManifest::path(dir).display()
            )));
        }
        if let Some(p) = position {
            if p.buckets.len() != n {
                return Err(DataError::Invalid(format!(
                    "the saved bucket loader position has {} bucket(s), the shard set {n}",
                    p.buckets.len()
                )));
            }
        }
        let all = ShardSource::from_manifest(dir, manifest, ShardSplit::Train);
        let (mut loaders, mut weights, mut left_out) = (Vec::new(), Vec::new(), Vec::new());
        for b in 0..n {
            let shards: Vec<ShardSource> = manifest
                .shards(ShardSplit::Train)
                .iter()
                .zip(&all)
                .filter(|(e, _)| e.bucket == Some(b as u32))
                .map(|(_, s)| s.clone())
                .collect();
            let samples: u64 = shards.iter().map(|s| s.samples).sum();
            let cfg = LoaderConfig {
                shards,
                seed: mix(base.seed, b as u64),
                latent_shape: Some(manifest.latent_shape_of(Some(b as u32))),
                ..base.clone()
            };
            let size = manifest.buckets[b];
            // Every rank needs a shard and a batch in every epoch, whatever the permutation.
            let usable = cfg.shards.len() >= cfg.world_size && usable(&cfg);
            if !usable {
                left_out.push(format!(
                    "bucket {b} ({}x{}): {samples} samples in {} shard(s), too few for a batch \
                     of {} on each of {} rank(s)",
                    size.width,
                    size.height,
                    cfg.shards.len(),
                    cfg.batch_size,
                    cfg.world_size
                ));
                weights.push(0);
                loaders.push(None);
                continue;
            }
            let loader = match position.and_then(|p| p.buckets[b].as_ref()) {
                Some(p) => LatentShardLoader::at(cfg, p)?,
                None if position.is_some() => {
                    return Err(DataError::Invalid(format!(
                        "the saved bucket loader position has no stream for bucket {b}, which \
                         this shard set uses"
                    )))
                }
                None => LatentShardLoader::new(cfg)?,
            };
            weights.push(samples);
            loaders.push(Some(loader));
        }
        if let Some(p) = position {
            if let Some(b) = (0..n).find(|&b| loaders[b].is_none() && p.buckets[b].is_some()) {
                return Err(DataError::Invalid(format!(
                    "the saved bucket loader position has a stream for bucket {b}, which this \
                     shard set leaves out"
                )));
            }
        }
        Ok(Self {
            schedule: BucketSchedule::new(base.seed, weights)?,
            group,
            loaders,
            batches: position.map_or(0, |p| p.batches),
            left_out,
        })
    }

    /// The next batch and its bucket.
    pub fn next_batch(&mut self) -> Result<(usize, LatentBatch)> {
        let b = self.schedule.bucket_of(self.batches / self.group);
        let loader = self.loaders[b]
            .as_mut()
            .expect("scheduled buckets have a loader");
        let batch = loader.next_batch()?;
        self.batches += 1;
        Ok((b, batch))
    }

    /// Where the loader stands: after the last batch [`BucketedLoader::next_batch`] returned.
    pub fn position(&self) -> BucketedPosition {
        BucketedPosition {
            batches: self.batches,
            buckets: self
                .loaders
                .iter()
                .map(|l| l.as_ref().map(|l| l.position().clone()))
                .collect(),
        }
    }

    pub fn schedule(&self) -> &BucketSchedule {
        &self.schedule
    }

    /// The buckets left out of the schedule, each with why.
    pub fn left_out(&self) -> &[String] {
        &self.left_out
    }
}

/// Whether every rank gets at least one batch in every epoch: each rank reads `floor(n / W)`
/// shards, so the `floor(n / W)` smallest shards must hold a batch.
fn usable(cfg: &LoaderConfig) -> bool {
    let per_rank = cfg.shards.len() / cfg.world_size;
    let mut counts: Vec<u64> = cfg.shards.iter().map(|s| s.samples).collect();
    counts.sort_unstable();
    let worst: u64 = counts[..per_rank].iter().sum();
    worst >= cfg.batch_size as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_follows_the_sample_counts_and_depends_on_seed_and_step_only() {
        let s = BucketSchedule::new(3, vec![600, 0, 300, 100]).unwrap();
        let mut counts = [0u64; 4];
        for step in 0..20_000 {
            counts[s.bucket_of(step)] += 1;
        }
        assert_eq!(counts[1], 0, "a bucket left out is never drawn");
        for (i, want) in [(0, 0.6), (2, 0.3), (3, 0.1)] {
            let got = counts[i] as f64 / 20_000.0;
            // Binomial standard deviation at most 0.0035: 5 sigma.
            assert!((got - want).abs() < 0.018, "bucket {i}: {got}");
        }
        let again = BucketSchedule::new(3, vec![600, 0, 300, 100]).unwrap();
        let other = BucketSchedule::new(4, vec![600, 0, 300, 100]).unwrap();
        let seq = |s: &BucketSchedule| (0..64).map(|t| s.bucket_of(t)).collect::<Vec<_>>();
        assert_eq!(seq(&s), seq(&again));
        assert_ne!(seq(&s), seq(&other));
        assert!(BucketSchedule::new(1, vec![0, 0]).is_err());
    }
}
