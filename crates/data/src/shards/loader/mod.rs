//! The streaming latent-shard loader for training (issue #5).
//!
//! - Shards are ordered per epoch by a permutation from (seed, epoch) and split across
//!   data-parallel ranks; every rank yields the same number of batches per epoch ([`plan`]).
//! - A shuffle buffer with its own generator from (seed, epoch, rank) mixes samples across
//!   shards ([`shuffle`]).
//! - Worker threads decode shards ahead, delivered in stream order ([`decode`]), so the batches
//!   depend on the seed and never on the worker count or thread timing.
//! - A producer thread collates batches ahead into a bounded channel (`prefetch` deep), in
//!   pinned memory when the batches go to CUDA.
//! - [`LatentShardLoader::position`] is exact: [`LatentShardLoader::at`] continues with the batches
//!   an uninterrupted loader would have produced, decoding only the shards the saved shuffle
//!   buffer and shard cursor refer to ([`position`]).
//! - Unreadable shards are errors naming the shard, or skipped and counted with
//!   `skip_bad_shards`.
//! - A shard set in aspect buckets is read by [`BucketedLoader`]: one such stream per bucket, and
//!   a seeded schedule picking each batch's bucket ([`bucketed`]).

pub mod bucketed;
mod collate;
mod config;
mod decode;
pub mod plan;
pub mod position;
mod shuffle;
mod stream;

pub use bucketed::{BucketSchedule, BucketedLoader, BucketedPosition};
pub use collate::{CaptionColumn, LatentBatch};
pub use config::{LoaderConfig, ShardSource};
pub use position::{LoaderPosition, SampleId, ShardCursor};

use crate::error::{DataError, Result};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;
use stream::Stream;

type Produced = (Result<LatentBatch>, LoaderPosition);

pub struct LatentShardLoader {
    cfg: Arc<LoaderConfig>,
    batches: Option<Receiver<Produced>>,
    producer: Option<JoinHandle<()>>,
    position: LoaderPosition,
    skipped: Vec<String>,
}

impl LatentShardLoader {
    /// A loader at the start of epoch 0.
    pub fn new(cfg: LoaderConfig) -> Result<Self> {
        let cfg = Arc::new(cfg);
        let stream = Stream::start(cfg.clone())?;
        Ok(Self::spawn(cfg, stream))
    }

    /// A loader continuing from `position` (from [`LatentShardLoader::position`] of a loader
    /// with the same config; workers and prefetch may differ).
    pub fn at(cfg: LoaderConfig, position: &LoaderPosition) -> Result<Self> {
        let cfg = Arc::new(cfg);
        let stream = Stream::at(cfg.clone(), position)?;
        Ok(Self::spawn(cfg, stream))
    }

    fn spawn(cfg: Arc<LoaderConfig>, mut stream: Stream) -> Self {
        let position = stream.position();
        let (tx, rx) = sync_channel::<Produced>(cfg.prefetch);
        let producer = std::thread::spawn(move || loop {
            let batch = stream.next_batch();
            let failed = batch.is_err();
            // A closed channel means the loader was dropped: stop.
            if tx.send((batch, stream.position())).is_err() || failed {
                return;
            }
        });
        Self {
            cfg,
            batches: Some(rx),
            producer: Some(producer),
            position,
            skipped: Vec::new(),
        }
    }

    /// The next batch. The stream never ends: epoch e + 1 follows epoch e.
    pub fn next_batch(&mut self) -> Result<LatentBatch> {
        let rx = self.batches.as_ref().expect("present until drop");
        let (batch, position) = rx.recv().map_err(|_| {
            DataError::Invalid(
                "latent shard loader: stopped after an earlier error (see that error)".into(),
            )
        })?;
        let batch = batch?;
        self.position = position;
        self.skipped.extend(batch.skipped.iter().cloned());
        Ok(batch)
    }

    /// Where the loader stands: after the last batch [`LatentShardLoader::next_batch`] returned.
    pub fn position(&self) -> &LoaderPosition {
        &self.position
    }

    /// Batches every rank yields in `epoch`.
    pub fn batches_in_epoch(&self, epoch: u64) -> u64 {
        plan::epoch_plan(&self.cfg, epoch).batches
    }

    /// The errors of the shards skipped by this loader (the position counts earlier ones too).
    pub fn skipped_shards(&self) -> &[String] {
        &self.skipped
    }

    pub fn config(&self) -> &LoaderConfig {
        &self.cfg
    }
}

impl Drop for LatentShardLoader {
    fn drop(&mut self) {
        // Closing the channel stops the producer at its next send; it then stops its workers.
        self.batches.take();
        if let Some(p) = self.producer.take() {
            let _ = p.join();
        }
    }
}
