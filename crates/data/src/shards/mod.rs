//! WebDataset-compatible latent shards (issue #5): the tar subset, `.npy` tensors, and the
//! shard writer/reader.

pub mod latent_shard;
pub mod npy;
pub mod tar;

pub use latent_shard::{read_latent_shard, LatentSample, LatentShardWriter};
