//! `flowscale-data`: dataset readers, pixel preprocessing and the deterministic batch sampler.
//!
//! So far: IDX files and Fashion-MNIST ([`fashion_mnist`]), in-memory labelled images, pixel
//! preprocessing for pixel-space training, a resumable [`BatchSampler`], and latent shards
//! ([`shards`]): writer, reader, manifest and the streaming training loader. Precompute comes with
//! issue #5.

pub mod batch_sampler;
pub mod error;
pub mod fashion_mnist;
pub mod idx;
pub mod labeled_images;
pub mod pixels;
pub mod shards;

pub use batch_sampler::{BatchSampler, SamplerPosition};
pub use error::{DataError, Result};
pub use labeled_images::LabeledImages;
pub use pixels::{to_model_pixels, to_u8_pixels};
pub use shards::{
    read_latent_shard, LatentBatch, LatentSample, LatentShardLoader, LatentShardWriter,
    LoaderConfig, LoaderPosition, ShardManifest, ShardSource,
};
