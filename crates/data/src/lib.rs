//! `flowscale-data`: dataset readers, pixel preprocessing and the deterministic batch sampler.
//!
//! So far: IDX files and Fashion-MNIST ([`fashion_mnist`]), in-memory labelled images, pixel
//! preprocessing for pixel-space training, and a resumable [`BatchSampler`]; WebDataset latent
//! shards ([`shards`]); dataset readers ([`sources`]: ImageNet, img2dataset/CC12M shards, image
//! folders, the npm emoji set) yielding [`Sample`]s; the SD3 image protocol ([`images`]: decode,
//! short-side resize, centre crop, [-1, 1], flip, parallel batches) with skipped samples counted
//! in a [`BadSampleReport`]; the streaming training loader over latent shards with their manifest
//! ([`LatentShardLoader`], [`ShardManifest`]); and the latent precompute ([`precompute`]).

pub mod bad_samples;
pub mod batch_sampler;
pub mod error;
pub mod fashion_mnist;
pub mod idx;
pub mod images;
pub mod labeled_images;
pub mod pixels;
pub mod precompute;
pub mod shards;
pub mod sources;

pub use bad_samples::{BadSample, BadSampleReport};
pub use batch_sampler::{BatchSampler, SamplerPosition};
pub use error::{DataError, Result};
pub use images::{preprocess_batch, PreprocessConfig, Preprocessed};
pub use labeled_images::LabeledImages;
pub use pixels::{to_model_pixels, to_u8_pixels};
pub use shards::{
    read_latent_shard, LatentBatch, LatentSample, LatentShardLoader, LatentShardWriter,
    LoaderConfig, LoaderPosition, ShardManifest, ShardSource,
};
pub use sources::{ImageSource, Sample, SourceItem};
