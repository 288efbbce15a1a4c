//! The sample stream of one rank: epoch plans, shards (decoded by the pool), the shuffle
//! buffer and batches. Runs on the loader's producer thread; everything here is a pure function
//! of the config and the position it started from.

use super::collate::{collate, LatentBatch};
use super::config::LoaderConfig;
use super::decode::{decode_shard, DecodePool};
use super::plan::{buffer_seed, epoch_plan, EpochPlan};
use super::position::{LoaderPosition, SampleId, ShardCursor};
use super::shuffle::ShuffleBuffer;
use crate::error::{DataError, Result};
use crate::shards::LatentSample;
use flowscale_core::FlowRng;
use std::collections::BTreeMap;
use std::sync::Arc;

struct Current {
    shard: usize,
    offset: usize,
    samples: std::vec::IntoIter<LatentSample>,
}

pub struct Stream {
    cfg: Arc<LoaderConfig>,
    epoch: u64,
    plan: EpochPlan,
    batches: u64,
    pass: u32,
    next_shard: usize,
    pass_samples: u64,
    current: Option<Current>,
    buffer: ShuffleBuffer,
    skipped_total: u64,
    skipped_now: Vec<String>,
    pool: DecodePool,
}

fn checked_plan(cfg: &LoaderConfig, epoch: u64) -> Result<EpochPlan> {
    let plan = epoch_plan(cfg, epoch);
    if plan.batches == 0 {
        return Err(DataError::Invalid(format!(
            "latent shard loader: in epoch {epoch} some rank's {} shard(s) hold fewer than one \
             batch of {} samples; use a smaller batch or fewer ranks",
            plan.shards.len(),
            cfg.batch_size
        )));
    }
    Ok(plan)
}

impl Stream {
    /// The stream at the start of epoch 0.
    pub fn start(cfg: Arc<LoaderConfig>) -> Result<Self> {
        cfg.check()?;
        let plan = checked_plan(&cfg, 0)?;
        let rng = FlowRng::new(buffer_seed(cfg.seed, 0, cfg.rank));
        Ok(Self {
            buffer: ShuffleBuffer::new(cfg.shuffle_buffer, rng),
            pool: DecodePool::start(cfg.clone(), 0, 0),
            cfg,
            epoch: 0,
            plan,
            batches: 0,
            pass: 0,
            next_shard: 0,
            pass_samples: 0,
            current: None,
            skipped_total: 0,
            skipped_now: Vec::new(),
        })
    }

    /// The stream at a saved position: decodes the shards the buffer and the cursor refer to.
    pub fn at(cfg: Arc<LoaderConfig>, pos: &LoaderPosition) -> Result<Self> {
        cfg.check()?;
        let plan = checked_plan(&cfg, pos.epoch)?;
        pos.check_fits(&cfg, plan.shards.len())?;
        let mut needed: Vec<usize> = pos.buffer.iter().map(|&(s, _)| s as usize).collect();
        needed.extend(pos.current.map(|c| c.shard));
        needed.sort_unstable();
        needed.dedup();
        let mut decoded: BTreeMap<usize, Vec<Option<LatentSample>>> = BTreeMap::new();
        for s in needed {
            let samples = decode_shard(&cfg.shards[s], cfg.latent_shape)?;
            decoded.insert(s, samples.into_iter().map(Some).collect());
        }
        let mut items = Vec::with_capacity(pos.buffer.len());
        for &(s, i) in &pos.buffer {
            let sample = decoded
                .get_mut(&(s as usize))
                .and_then(|v| v.get_mut(i as usize))
                .and_then(Option::take)
                .ok_or_else(|| {
                    DataError::Invalid(format!(
                        "the saved loader position lists sample {i} of {} twice",
                        cfg.shards[s as usize].path.display()
                    ))
                })?;
            items.push(((s, i), sample));
        }
        let current = match pos.current {
            Some(ShardCursor { shard, offset }) => {
                let rest: Vec<LatentSample> = decoded
                    .remove(&shard)
                    .unwrap_or_default()
                    .into_iter()
                    .skip(offset)
                    .flatten()
                    .collect();
                Some(Current {
                    shard,
                    offset,
                    samples: rest.into_iter(),
                })
            }
            None => None,
        };
        let rng = FlowRng::from_state(pos.rng).expect("checked non-zero");
        // The pool decodes pass-0 shards ahead; in a later pass it starts at the next epoch.
        let (pool_epoch, pool_index) = if pos.pass == 0 {
            (pos.epoch, pos.next_shard)
        } else {
            (pos.epoch + 1, 0)
        };
        Ok(Self {
            buffer: ShuffleBuffer::restore(cfg.shuffle_buffer, items, rng),
            pool: DecodePool::start(cfg.clone(), pool_epoch, pool_index),
            cfg,
            epoch: pos.epoch,
            plan,
            batches: pos.batches,
            pass: pos.pass,
            next_shard: pos.next_shard,
            pass_samples: pos.pass_samples,
            current,
            skipped_total: pos.skipped_shards,
            skipped_now: Vec::new(),
        })
    }

    fn start_epoch(&mut self, epoch: u64) -> Result<()> {
        self.plan = checked_plan(&self.cfg, epoch)?;
        self.epoch = epoch;
        self.batches = 0;
        self.pass = 0;
        self.next_shard = 0;
        self.pass_samples = 0;
        self.current = None;
        let rng = FlowRng::new(buffer_seed(self.cfg.seed, epoch, self.cfg.rank));
        self.buffer = ShuffleBuffer::new(self.cfg.shuffle_buffer, rng);
        Ok(())
    }

    fn next_sample(&mut self) -> Result<(SampleId, LatentSample)> {
        loop {
            if let Some(cur) = &mut self.current {
                if let Some(s) = cur.samples.next() {
                    let id = (cur.shard as u32, cur.offset as u32);
                    cur.offset += 1;
                    self.pass_samples += 1;
                    if let Some(out) = self.buffer.push(id, s) {
                        return Ok(out);
                    }
                    continue;
                }
                self.current = None;
            }
            if self.next_shard < self.plan.shards.len() {
                let index = self.next_shard;
                let shard = self.plan.shards[index];
                self.next_shard += 1;
                let decoded = if self.pass == 0 {
                    self.pool.next(self.epoch, index, shard)
                } else {
                    decode_shard(&self.cfg.shards[shard], self.cfg.latent_shape)
                };
                match decoded {
                    Ok(v) => {
                        self.current = Some(Current {
                            shard,
                            offset: 0,
                            samples: v.into_iter(),
                        })
                    }
                    Err(e) if self.cfg.skip_bad_shards => {
                        // Counted once, in the pass that first met it.
                        if self.pass == 0 {
                            self.skipped_total += 1;
                            self.skipped_now.push(e.to_string());
                        }
                    }
                    Err(e) => return Err(e),
                }
                continue;
            }
            // End of a pass: drain the buffer.
            if let Some(out) = self.buffer.pop() {
                return Ok(out);
            }
            if self.pass_samples == 0 {
                return Err(DataError::Invalid(format!(
                    "latent shard loader: rank {} has no readable shard in epoch {} (all of \
                     its {} shards were skipped as bad)",
                    self.cfg.rank,
                    self.epoch,
                    self.plan.shards.len()
                )));
            }
            // Skipped shards left this rank short of the epoch's batch count: read its
            // shards again so every rank still yields the same number of batches.
            self.pass += 1;
            self.next_shard = 0;
            self.pass_samples = 0;
        }
    }

    pub fn next_batch(&mut self) -> Result<LatentBatch> {
        let mut samples = Vec::with_capacity(self.cfg.batch_size);
        while samples.len() < self.cfg.batch_size {
            samples.push(self.next_sample()?);
        }
        let cfg = self.cfg.clone();
        let shard_path = move |id: SampleId| cfg.shards[id.0 as usize].path.clone();
        let mut batch = collate(samples, &shard_path, self.cfg.pin_memory)?;
        batch.skipped = std::mem::take(&mut self.skipped_now);
        self.batches += 1;
        if self.batches == self.plan.batches {
            self.start_epoch(self.epoch + 1)?;
        }
        Ok(batch)
    }

    pub fn position(&self) -> LoaderPosition {
        LoaderPosition {
            epoch: self.epoch,
            batches: self.batches,
            pass: self.pass,
            next_shard: self.next_shard,
            pass_samples: self.pass_samples,
            current: self.current.as_ref().map(|c| ShardCursor {
                shard: c.shard,
                offset: c.offset,
            }),
            buffer: self.buffer.ids(),
            rng: self.buffer.rng_state(),
            skipped_shards: self.skipped_total,
            rank: self.cfg.rank,
            world_size: self.cfg.world_size,
            batch_size: self.cfg.batch_size,
            shuffle_buffer: self.cfg.shuffle_buffer,
            shards: self.cfg.shards.len(),
        }
    }
}
