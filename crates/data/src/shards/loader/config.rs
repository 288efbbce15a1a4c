//! What a [`super::LatentShardLoader`] reads and how.

use crate::error::{DataError, Result};
use crate::shards::manifest::{ShardManifest, ShardSplit};
use std::path::{Path, PathBuf};

/// One shard and the sample count its manifest declares (the epoch plan relies on the counts,
/// so a shard holding a different number is treated as bad).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSource {
    pub path: PathBuf,
    pub samples: u64,
}

impl ShardSource {
    /// The shards of `split` of the manifest in `dir`, in manifest order.
    pub fn from_manifest(dir: &Path, manifest: &ShardManifest, split: ShardSplit) -> Vec<Self> {
        manifest
            .shards(split)
            .iter()
            .map(|s| Self {
                path: dir.join(&s.file),
                samples: s.samples,
            })
            .collect()
    }
}

#[derive(Debug, Clone)]
pub struct LoaderConfig {
    /// Every shard of the split; each rank reads its share.
    pub shards: Vec<ShardSource>,
    /// Samples per batch on this rank.
    pub batch_size: usize,
    pub seed: u64,
    /// Data-parallel rank and world size (0 and 1 for one process).
    pub rank: usize,
    pub world_size: usize,
    /// Shuffle buffer capacity in samples; 0 or 1: shard order only, no sample shuffling.
    pub shuffle_buffer: usize,
    /// Threads decoding shards ahead (>= 1). Does not change the batches.
    pub workers: usize,
    /// Batches collated ahead of the consumer (>= 1).
    pub prefetch: usize,
    /// Collate into pinned host memory (set when the batches go to a CUDA device).
    pub pin_memory: bool,
    /// Skip (and count) unreadable shards instead of failing.
    pub skip_bad_shards: bool,
    /// `[C, H, W]` every latent must have (from the manifest); `None`: the first sample's.
    pub latent_shape: Option<[i64; 3]>,
}

impl LoaderConfig {
    /// Defaults for everything but the data and the batch: one process, 1000-sample buffer,
    /// two workers, four batches ahead, no pinning, bad shards are errors.
    pub fn new(shards: Vec<ShardSource>, batch_size: usize, seed: u64) -> Self {
        Self {
            shards,
            batch_size,
            seed,
            rank: 0,
            world_size: 1,
            shuffle_buffer: 1000,
            workers: 2,
            prefetch: 4,
            pin_memory: false,
            skip_bad_shards: false,
            latent_shape: None,
        }
    }

    pub(crate) fn check(&self) -> Result<()> {
        let bad = |m: String| Err(DataError::Invalid(format!("latent shard loader: {m}")));
        if self.batch_size == 0 || self.workers == 0 || self.prefetch == 0 {
            return bad(format!(
                "batch size ({}), workers ({}) and prefetch ({}) must be >= 1",
                self.batch_size, self.workers, self.prefetch
            ));
        }
        if self.world_size == 0 || self.rank >= self.world_size {
            return bad(format!(
                "rank {} is not in a world of {}",
                self.rank, self.world_size
            ));
        }
        if self.shards.len() < self.world_size {
            return bad(format!(
                "{} shard(s) for {} data-parallel ranks: every rank needs at least one shard; \
                 write the data into more (smaller) shards or use fewer ranks",
                self.shards.len(),
                self.world_size
            ));
        }
        if self.shards.len() > u32::MAX as usize {
            return bad(format!("{} shards is too many", self.shards.len()));
        }
        Ok(())
    }
}
