//! WebDataset-compatible latent shards (issue #5): the tar subset, `.npy` tensors, the shard
//! writer/reader, the shard-set manifest and the streaming training loader.

pub mod latent_shard;
pub mod latent_stats;
pub mod loader;
pub mod manifest;
pub mod npy;
pub mod tar;

pub use latent_shard::{
    is_caption_field, read_latent_shard, LatentSample, LatentShardWriter, SampleCaption,
    PRIMARY_CAPTION,
};
pub use latent_stats::{LatentStats, LatentSums};
pub use loader::{
    CaptionColumn, LatentBatch, LatentShardLoader, LoaderConfig, LoaderPosition, ShardSource,
};
pub use manifest::{
    AutoencoderInfo, BucketEntry, CacheExpectation, LatentDtype, ShardEntry, ShardManifest,
    ShardSplit, Splits, TextEmbeddingInfo, MANIFEST_FILE, MANIFEST_VERSION, MANIFEST_VERSION_MIN,
};
