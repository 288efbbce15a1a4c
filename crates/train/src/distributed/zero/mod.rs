//! ZeRO stages 1 and 2 (Rajbhandari et al., 2020) over c10d: the AdamW moments (stage 1) and
//! the gradients (stage 2) split over the data-parallel ranks, with the fp32 weights kept whole
//! on every rank. See `docs/distributed.md` for the memory it saves and how checkpoints store
//! the shards.

mod layout;
mod optimizer;
mod stage;

pub use layout::{Piece, ShardLayout};
pub use optimizer::ShardedAdamW;
pub use stage::ZeroStage;

/// The checkpoint group (file `<name>.safetensors`) holding rank `rank`'s optimiser shard in a
/// world of `world` ranks.
pub fn shard_group_name(rank: usize, world: usize) -> String {
    format!("{SHARD_GROUP_PREFIX}{rank:05}-of-{world:05}")
}

/// The file of [`shard_group_name`] in a checkpoint folder.
pub fn shard_file_name(rank: usize, world: usize) -> String {
    crate::checkpoint::group_file_name(&shard_group_name(rank, world))
}

/// Prefix of the per-rank optimiser groups: read on demand by the rank that owns one, never as
/// part of a whole checkpoint.
pub const SHARD_GROUP_PREFIX: &str = "optimizer-zero-rank-";
