//! How the configured global batch is split: over the ranks, then into the micro-batches a device
//! runs at once. `train.batch_size` is the batch of one optimiser step over every rank (the
//! paper's 1024), so a run means the same thing on any number of ranks; each rank trains on an
//! equal share, accumulated in micro-batches of `train.micro_batch_size`.

use crate::config::TrainConfig;
use crate::error::{Result, TrainError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPlan {
    /// Samples per optimiser step, all ranks together.
    pub global: u64,
    /// Samples per optimiser step on one rank.
    pub per_rank: u64,
    /// Samples per forward and backward pass.
    pub micro: u64,
    /// Micro-batches per optimiser step on one rank.
    pub accum: u64,
}

impl BatchPlan {
    /// The plan for `world` ranks; a global batch the ranks cannot share equally, or a share the
    /// micro-batch does not divide, is an error naming the keys and the numbers.
    pub fn new(train: &TrainConfig, world: usize) -> Result<Self> {
        let global = train.batch_size;
        let world = world.max(1) as u64;
        if !global.is_multiple_of(world) {
            return Err(TrainError::Invalid(format!(
                "train.batch_size = {global} (the global batch) does not divide among {world} \
                 ranks: use a multiple of {world}"
            )));
        }
        let per_rank = global / world;
        let micro = train.micro_batch_size.unwrap_or(per_rank).min(per_rank);
        if !per_rank.is_multiple_of(micro) {
            return Err(TrainError::Invalid(format!(
                "train.micro_batch_size = {micro} does not divide each rank's share of \
                 train.batch_size ({global} / {world} ranks = {per_rank}): use a divisor of \
                 {per_rank}"
            )));
        }
        Ok(Self {
            global,
            per_rank,
            micro,
            accum: per_rank / micro,
        })
    }

    /// One line for the run's start: `global batch 1024 = 8 ranks x 2 micro-batches x 64`.
    pub fn describe(&self) -> String {
        let world = self.global / self.per_rank;
        format!(
            "global batch {} = {world} rank(s) x {} micro-batch(es) x {}",
            self.global, self.accum, self.micro
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn train(batch: u64, micro: Option<u64>) -> TrainConfig {
        TrainConfig {
            steps: 1,
            batch_size: batch,
            micro_batch_size: micro,
            grad_accum: None,
            precision: crate::config::Precision::Fp32,
            activation_checkpointing: Default::default(),
            zero_stage: Default::default(),
            cuda_graph: false,
        }
    }

    #[test]
    fn the_global_batch_splits_over_ranks_then_micro_batches() {
        let p = BatchPlan::new(&train(1024, Some(64)), 8).unwrap();
        assert_eq!((p.global, p.per_rank, p.micro, p.accum), (1024, 128, 64, 2));
        assert_eq!(
            p.describe(),
            "global batch 1024 = 8 rank(s) x 2 micro-batch(es) x 64"
        );
        // No limit: the whole share at once; a limit above the share is the share.
        let p = BatchPlan::new(&train(12, None), 3).unwrap();
        assert_eq!((p.per_rank, p.micro, p.accum), (4, 4, 1));
        let p = BatchPlan::new(&train(12, Some(100)), 1).unwrap();
        assert_eq!((p.micro, p.accum), (12, 1));
    }

    #[test]
    fn shares_that_do_not_divide_are_named() {
        let e = BatchPlan::new(&train(1000, None), 3)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("train.batch_size = 1000") && e.contains("3 ranks"),
            "{e}"
        );
        let e = BatchPlan::new(&train(96, Some(20)), 2)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("train.micro_batch_size = 20") && e.contains("= 48"),
            "{e}"
        );
    }
}
