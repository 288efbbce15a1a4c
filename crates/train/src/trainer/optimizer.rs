//! The trainer's optimiser: AdamW replicated on every rank (`train.zero_stage = 0`), or sharded
//! over the ranks (ZeRO 1 and 2, [`crate::distributed::zero`]). One interface for the step,
//! the gradient reduction before it, and the checkpoint groups.

use crate::checkpoint::{write_group, CheckpointStore, LoadedCheckpoint};
use crate::distributed::zero::{
    shard_file_name, shard_group_name, ShardedAdamW, ZeroStage, SHARD_GROUP_PREFIX,
};
use crate::distributed::DataParallel;
use crate::error::{Result, TrainError};
use crate::optim::{clip_grad_norm, grad_norm, AdamW, AdamWConfig};
use crate::state::TrainState;
use std::path::Path;
use std::time::Instant;
use tch::Tensor;

pub enum RunOptimizer {
    Replicated(AdamW),
    Sharded(ShardedAdamW),
}

/// The checkpoint group of a replicated optimiser.
const REPLICATED_GROUP: &str = "optimizer";

impl RunOptimizer {
    /// The optimiser of `params` for rank `rank` of `world` under `stage`.
    pub fn new(
        params: &[(String, Tensor)],
        config: AdamWConfig,
        stage: ZeroStage,
        (rank, world): (usize, usize),
    ) -> Result<Self> {
        Ok(match stage {
            ZeroStage::Replicated => Self::Replicated(AdamW::new(params, config)?),
            _ => Self::Sharded(ShardedAdamW::new(params, config, stage, rank, world)?),
        })
    }

    /// Bytes of AdamW state (the moments) this rank holds.
    pub fn state_bytes(&self) -> u64 {
        match self {
            Self::Replicated(o) => o.state_bytes(),
            Self::Sharded(o) => o.state_bytes(),
        }
    }

    /// Averages the gradients of `params` over the ranks (an all-reduce, or ZeRO-2's
    /// reduce-scatter into the shards) and clips them to `clip` when set; returns the global
    /// norm before clipping.
    pub fn reduce_and_clip(
        &mut self,
        params: &[Tensor],
        dp: Option<&mut DataParallel>,
        clip: Option<f64>,
    ) -> Result<Option<Tensor>> {
        match self {
            Self::Sharded(o) if o.stage() == ZeroStage::Gradients => {
                let start = Instant::now();
                o.reduce_gradients(dp.as_deref())?;
                let dp = dp.map(|d| {
                    d.add_gradient_sync_time(start.elapsed());
                    &*d
                });
                match clip {
                    Some(max) => o.clip_grad_norm(max, dp),
                    None => o.grad_norm(dp),
                }
            }
            _ => {
                if let Some(d) = dp {
                    d.average_gradients(params)?;
                }
                match clip {
                    Some(max) => clip_grad_norm(params, max),
                    None => grad_norm(params),
                }
            }
        }
    }

    /// One update at learning rate `lr` (ZeRO: of this rank's shard, then the all-gather).
    pub fn step(&mut self, lr: f64, dp: Option<&DataParallel>) -> Result<()> {
        match self {
            Self::Replicated(o) => o.step(lr),
            Self::Sharded(o) => o.step(lr, dp),
        }
    }

    pub fn zero_grad(&mut self) -> Result<()> {
        match self {
            Self::Replicated(o) => {
                o.zero_grad();
                Ok(())
            }
            Self::Sharded(o) => o.zero_grad(),
        }
    }

    /// Whether each rank holds (and checkpoints) its own shard of the state.
    pub fn is_sharded(&self) -> bool {
        matches!(self, Self::Sharded(_))
    }

    /// The replicated optimiser's checkpoint group, written by rank 0 with the model; `None`
    /// for a sharded one, whose ranks each write their own ([`RunOptimizer::write_shard`]).
    pub fn replicated_group(&self) -> Option<(String, Vec<(String, Tensor)>)> {
        match self {
            Self::Replicated(o) => Some((REPLICATED_GROUP.into(), o.state())),
            Self::Sharded(_) => None,
        }
    }

    /// Writes this rank's optimiser shard into the checkpoint folder `tmp` being assembled
    /// (nothing for a replicated optimiser).
    pub fn write_shard(&self, tmp: &Path, (rank, world): (usize, usize)) -> Result<()> {
        if let Self::Sharded(o) = self {
            write_group(tmp, &shard_group_name(rank, world), &o.state())?;
        }
        Ok(())
    }

    /// Restores the optimiser from checkpoint `ck` (a sharded one: this rank's shard file,
    /// which must come from the same world size).
    pub fn restore(
        &mut self,
        ck: &LoadedCheckpoint<TrainState>,
        (rank, world): (usize, usize),
    ) -> Result<()> {
        let step = ck.state.step;
        match self {
            Self::Replicated(o) => {
                if !ck.groups.contains_key(REPLICATED_GROUP) && !shard_files(&ck.dir).is_empty() {
                    return Err(TrainError::Invalid(format!(
                        "{}: the optimiser was saved sharded (train.zero_stage 1 or 2); resume \
                         with the stage and world size it was written with",
                        ck.dir.display()
                    )));
                }
                o.load_state(ck.group(REPLICATED_GROUP)?, step)
            }
            Self::Sharded(o) => {
                let name = shard_group_name(rank, world);
                if !ck.dir.join(shard_file_name(rank, world)).is_file() {
                    let found = shard_files(&ck.dir);
                    return Err(TrainError::Invalid(format!(
                        "{}: no optimiser shard {name} for rank {rank} of {world}; the \
                         checkpoint holds {}; resume with the world size and ZeRO stage it was \
                         written with",
                        ck.dir.display(),
                        if found.is_empty() {
                            "an unsharded optimiser (train.zero_stage 0)".to_owned()
                        } else {
                            found.join(", ")
                        }
                    )));
                }
                o.load_state(&CheckpointStore::load_group(&ck.dir, &name)?)
            }
        }
    }
}

/// The per-rank optimiser shards in checkpoint folder `dir`, by group name, sorted.
fn shard_files(dir: &Path) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let group = name.strip_suffix(".safetensors")?;
            group
                .starts_with(SHARD_GROUP_PREFIX)
                .then(|| group.to_owned())
        })
        .collect();
    found.sort();
    found
}
