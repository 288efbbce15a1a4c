//! Latent precompute (`flowscale precompute CONFIG`): a dataset, read and preprocessed once,
//! encoded by an autoencoder (and optionally a text encoder) into WebDataset latent shards with a
//! manifest. Resumable (finished shards are kept), deterministic (a shard's bytes depend only on
//! the config), and splittable across processes.

pub mod bucket_config;
pub mod caption_fields;
pub mod config;
pub mod encoders;
pub mod plan;
pub mod record;
pub mod run;
pub mod unit_writer;

pub use config::PrecomputeConfig;
pub use plan::{Plan, ShardShare};
pub use record::ShardRecord;
pub use run::{
    precompute, PrecomputeReport, Progress, Silent, ABORT_AFTER_ENV, BAD_SAMPLES_FILE,
    FINGERPRINT_FILE,
};
