//! Which shards a rank reads in an epoch, and how many batches every rank yields.
//!
//! The shard list is permuted by a generator seeded from (seed, epoch). With `n` shards and `W`
//! ranks, rank `r` takes positions `r, r + W, r + 2W, ...` of the permutation, `n / W` shards
//! each: the `n mod W` shards at the end of the permutation sit the epoch out (a different set
//! each epoch). Every rank then yields the same number of batches,
//! `min over ranks of floor(samples of its shards / batch)` from the manifest's counts, so
//! data-parallel ranks step in lockstep; the samples past that count are dropped (like
//! `drop_last`).

use super::config::LoaderConfig;
use flowscale_core::FlowRng;

/// One rank's epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochPlan {
    /// Indices into [`LoaderConfig::shards`], in reading order.
    pub shards: Vec<usize>,
    /// Batches every rank yields this epoch.
    pub batches: u64,
}

fn mix(a: u64, b: u64) -> u64 {
    a ^ b
        .wrapping_add(0x9E37_79B9_7F4A_7C15)
        .wrapping_mul(0xD1B5_4A32_D192_ED03)
        .rotate_left(29)
}

/// The shard permutation of an epoch.
pub fn shard_permutation(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut rng = FlowRng::new(mix(seed ^ 0x5ead_5a4d, epoch));
    let mut p: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut p);
    p
}

/// The seed of the shuffle buffer's generator for (seed, epoch, rank).
pub fn buffer_seed(seed: u64, epoch: u64, rank: usize) -> u64 {
    mix(mix(seed ^ 0xb0ff_e125, epoch), rank as u64)
}

/// `rank`'s shards and the common batch count of `epoch`.
pub fn epoch_plan(cfg: &LoaderConfig, epoch: u64) -> EpochPlan {
    let n = cfg.shards.len();
    let w = cfg.world_size;
    let per_rank = n / w;
    let perm = shard_permutation(n, cfg.seed, epoch);
    let of_rank = |r: usize| -> Vec<usize> { (0..per_rank).map(|j| perm[r + j * w]).collect() };
    let batches = (0..w)
        .map(|r| {
            let samples: u64 = of_rank(r).iter().map(|&s| cfg.shards[s].samples).sum();
            samples / cfg.batch_size as u64
        })
        .min()
        .unwrap_or(0);
    EpochPlan {
        shards: of_rank(cfg.rank),
        batches,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shards::loader::ShardSource;

    fn cfg(counts: &[u64], batch: usize, world: usize, rank: usize) -> LoaderConfig {
        let shards = counts
            .iter()
            .enumerate()
            .map(|(i, &samples)| ShardSource {
                path: format!("s{i}.tar").into(),
                samples,
            })
            .collect();
        LoaderConfig {
            rank,
            world_size: world,
            ..LoaderConfig::new(shards, batch, 11)
        }
    }

    #[test]
    fn ranks_split_each_epoch_disjointly_and_agree_on_the_batch_count() {
        let counts = [10, 10, 10, 10, 10, 10, 7];
        for epoch in 0..4 {
            let plans: Vec<EpochPlan> = (0..3)
                .map(|r| epoch_plan(&cfg(&counts, 4, 3, r), epoch))
                .collect();
            let mut all: Vec<usize> = plans.iter().flat_map(|p| p.shards.clone()).collect();
            assert!(plans.iter().all(|p| p.shards.len() == 2));
            all.sort();
            all.dedup();
            assert_eq!(all.len(), 6, "disjoint, one shard sits out");
            let b = plans[0].batches;
            assert!(plans.iter().all(|p| p.batches == b));
            // 20 samples -> 5 batches of 4, or 17 -> 4 when the short shard is in.
            let min = plans
                .iter()
                .map(|p| p.shards.iter().map(|&s| counts[s]).sum::<u64>() / 4)
                .min()
                .unwrap();
            assert_eq!(b, min);
        }
        let e0 = epoch_plan(&cfg(&counts, 4, 1, 0), 0).shards;
        let e1 = epoch_plan(&cfg(&counts, 4, 1, 0), 1).shards;
        assert_ne!(e0, e1, "the shard order changes per epoch");
    }
}
