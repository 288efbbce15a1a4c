//! The shuffle buffer: WebDataset's scheme with a deterministic generator. Each sample read
//! goes in; once the buffer holds `capacity`, a uniformly chosen one comes out. At the end of a
//! pass the rest come out in random order. Removal is `swap_remove`, so the buffer's order (and
//! therefore the stream) is a pure function of the input order and the generator.

use super::position::SampleId;
use crate::shards::LatentSample;
use flowscale_core::FlowRng;

pub struct ShuffleBuffer {
    capacity: usize,
    items: Vec<(SampleId, LatentSample)>,
    rng: FlowRng,
}

impl ShuffleBuffer {
    pub fn new(capacity: usize, rng: FlowRng) -> Self {
        Self {
            capacity: capacity.max(1),
            items: Vec::with_capacity(capacity.max(1)),
            rng,
        }
    }

    /// Adds a sample; returns one when the buffer is full.
    pub fn push(&mut self, id: SampleId, s: LatentSample) -> Option<(SampleId, LatentSample)> {
        self.items.push((id, s));
        if self.items.len() >= self.capacity {
            self.pop()
        } else {
            None
        }
    }

    /// Removes a uniformly chosen sample (draining at the end of a pass).
    pub fn pop(&mut self) -> Option<(SampleId, LatentSample)> {
        if self.items.is_empty() {
            return None;
        }
        let j = self.rng.below(self.items.len() as u64) as usize;
        Some(self.items.swap_remove(j))
    }

    pub fn ids(&self) -> Vec<SampleId> {
        self.items.iter().map(|(id, _)| *id).collect()
    }

    pub fn rng_state(&self) -> [u64; 4] {
        self.rng.state()
    }

    /// Restores a saved buffer (samples in saved order) and generator.
    pub fn restore(capacity: usize, items: Vec<(SampleId, LatentSample)>, rng: FlowRng) -> Self {
        Self {
            capacity: capacity.max(1),
            items,
            rng,
        }
    }
}
