//! The exact position of a loader, saved in checkpoints.
//!
//! It records where the stream stands between two batches: the epoch, the shard cursor (and the
//! offset inside a partly read shard), the ids of the samples waiting in the shuffle buffer in
//! buffer order, and the buffer generator's state. Restoring decodes only the shards those ids
//! and the cursor point at (at most `buffer / samples per shard + 2` shards), not the epoch's
//! prefix. The loader's shape (rank, world size, batch, buffer size, shard count) is recorded too
//! so a position is never applied to a differently configured loader.

use super::config::LoaderConfig;
use crate::error::{DataError, Result};
use serde::{Deserialize, Serialize};

/// A sample: (index into the shard list, index inside the shard).
pub type SampleId = (u32, u32);

/// A partly read shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardCursor {
    pub shard: usize,
    /// Samples of it already pushed into the shuffle buffer.
    pub offset: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoaderPosition {
    pub epoch: u64,
    /// Batches yielded in this epoch.
    pub batches: u64,
    /// Reading pass over the epoch's shards: 0, or more when skipped shards left the rank short
    /// of the epoch's batch count and its shards are read again.
    pub pass: u32,
    /// Next shard of the epoch plan to open.
    pub next_shard: usize,
    /// Samples read in this pass (a pass that reads none means every shard is bad).
    pub pass_samples: u64,
    pub current: Option<ShardCursor>,
    pub buffer: Vec<SampleId>,
    pub rng: [u64; 4],
    /// Shards skipped as bad since the run started.
    pub skipped_shards: u64,
    pub rank: usize,
    pub world_size: usize,
    pub batch_size: usize,
    pub shuffle_buffer: usize,
    pub shards: usize,
}

impl LoaderPosition {
    /// Refuses a position saved by a loader configured differently.
    pub(crate) fn check_fits(&self, cfg: &LoaderConfig, plan_len: usize) -> Result<()> {
        let mut diff = Vec::new();
        let mut field = |name: &str, saved: usize, now: usize| {
            if saved != now {
                diff.push(format!("{name} {saved} (now {now})"));
            }
        };
        field("rank", self.rank, cfg.rank);
        field("world size", self.world_size, cfg.world_size);
        field("batch size", self.batch_size, cfg.batch_size);
        field("shuffle buffer", self.shuffle_buffer, cfg.shuffle_buffer);
        field("shard count", self.shards, cfg.shards.len());
        if !diff.is_empty() {
            return Err(DataError::Invalid(format!(
                "the saved loader position was written with {}; it can only resume the same \
                 configuration",
                diff.join(", ")
            )));
        }
        let n = cfg.shards.len();
        let ids_ok = self
            .buffer
            .iter()
            .all(|&(s, i)| (s as usize) < n && u64::from(i) < cfg.shards[s as usize].samples);
        let cursor_ok = self
            .current
            .is_none_or(|c| c.shard < n && (c.offset as u64) <= cfg.shards[c.shard].samples);
        if !ids_ok || !cursor_ok || self.next_shard > plan_len || self.rng == [0; 4] {
            return Err(DataError::Invalid(
                "the saved loader position is inconsistent with the shard list (sample ids, \
                 shard cursor or generator state out of range)"
                    .into(),
            ));
        }
        Ok(())
    }
}
