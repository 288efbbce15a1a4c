//! Deterministic, resumable shuffling into fixed-size batches.
//!
//! Every epoch is a fresh permutation drawn from a generator seeded by (seed, epoch), so the
//! order is a pure function of the seed and a position `(epoch, next index)` is all a checkpoint
//! needs to continue exactly where a run stopped. The last partial batch of an epoch is dropped
//! so every step sees the same batch size (PyTorch's `drop_last=True`).

use crate::error::{DataError, Result};
use flowscale_core::FlowRng;
use tch::Tensor;

/// Where the sampler stands: the epoch and the next position in its permutation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SamplerPosition {
    pub epoch: u64,
    pub index: usize,
}

#[derive(Debug)]
pub struct BatchSampler {
    len: usize,
    batch: usize,
    seed: u64,
    position: SamplerPosition,
    permutation: Vec<i64>,
}

impl BatchSampler {
    pub fn new(len: usize, batch: usize, seed: u64) -> Result<Self> {
        Self::at(len, batch, seed, SamplerPosition::default())
    }

    /// A sampler continuing from `position`.
    pub fn at(len: usize, batch: usize, seed: u64, position: SamplerPosition) -> Result<Self> {
        if batch == 0 || batch > len {
            return Err(DataError::Invalid(format!(
                "batch size {batch} must be in 1..={len} (the dataset size)"
            )));
        }
        if position.index > len {
            return Err(DataError::Invalid(format!(
                "sampler position {} is past the dataset size {len}",
                position.index
            )));
        }
        Ok(Self {
            len,
            batch,
            seed,
            position,
            permutation: permutation(len, seed, position.epoch),
        })
    }

    pub fn position(&self) -> SamplerPosition {
        self.position
    }

    /// Indices of the next batch, i64 `[batch]`.
    pub fn next_indices(&mut self) -> Result<Tensor> {
        if self.position.index + self.batch > self.len {
            self.position = SamplerPosition {
                epoch: self.position.epoch + 1,
                index: 0,
            };
            self.permutation = permutation(self.len, self.seed, self.position.epoch);
        }
        let start = self.position.index;
        self.position.index += self.batch;
        Ok(Tensor::f_from_slice(
            &self.permutation[start..start + self.batch],
        )?)
    }
}

/// Fisher-Yates with a generator seeded by (seed, epoch).
fn permutation(len: usize, seed: u64, epoch: u64) -> Vec<i64> {
    let mut rng = FlowRng::new(seed ^ epoch.wrapping_mul(0xD1B5_4A32_D192_ED03));
    let mut p: Vec<i64> = (0..len as i64).collect();
    rng.shuffle(&mut p);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(s: &mut BatchSampler, n: usize) -> Vec<i64> {
        (0..n)
            .flat_map(|_| Vec::<i64>::try_from(s.next_indices().unwrap()).unwrap())
            .collect()
    }

    #[test]
    fn epochs_are_permutations_and_differ() {
        let mut s = BatchSampler::new(10, 3, 7).unwrap();
        let e0 = take(&mut s, 3); // 9 of 10, last partial batch dropped
        let mut sorted = e0.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 9);
        let e1 = take(&mut s, 3);
        assert_eq!(s.position().epoch, 1);
        assert_ne!(e0, e1);
    }

    #[test]
    fn resuming_from_a_position_continues_the_same_stream() {
        let mut a = BatchSampler::new(50, 8, 3).unwrap();
        let full = take(&mut a, 20);
        let mut b = BatchSampler::new(50, 8, 3).unwrap();
        let first = take(&mut b, 9);
        let mut c = BatchSampler::at(50, 8, 3, b.position()).unwrap();
        let rest = take(&mut c, 11);
        assert_eq!([first, rest].concat(), full);
    }

    #[test]
    fn rejects_bad_sizes() {
        assert!(BatchSampler::new(5, 6, 0).is_err());
        assert!(BatchSampler::new(5, 0, 0).is_err());
    }
}
