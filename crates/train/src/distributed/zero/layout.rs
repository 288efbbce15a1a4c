//! How a list of parameters is split over ranks: laid end to end in one flat vector (in the
//! group's fixed order), padded with zeros to a multiple of the world size, and cut into equal
//! contiguous shards, rank r owning elements `r * shard_len .. (r + 1) * shard_len`. Equal
//! shards are what reduce-scatter and all-gather exchange; a parameter may straddle two shards.

use std::ops::Range;

/// The part of one parameter that lies in this rank's shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// Index of the parameter in the group.
    pub param: usize,
    /// First element of the piece inside the (flattened) parameter.
    pub param_offset: i64,
    /// First element of the piece inside this rank's shard.
    pub shard_offset: i64,
    pub len: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardLayout {
    numels: Vec<i64>,
    /// Start of each parameter in the flat vector.
    offsets: Vec<i64>,
    total: i64,
    shard_len: i64,
    rank: i64,
    world: i64,
}

impl ShardLayout {
    /// The layout of parameters with `numels` elements over `world` ranks, seen from `rank`.
    pub fn new(numels: &[i64], rank: usize, world: usize) -> Self {
        let mut offsets = Vec::with_capacity(numels.len());
        let mut total = 0;
        for &n in numels {
            offsets.push(total);
            total += n;
        }
        let world = world.max(1) as i64;
        Self {
            numels: numels.to_vec(),
            offsets,
            total,
            shard_len: (total + world - 1) / world,
            rank: rank as i64,
            world,
        }
    }

    /// Elements of the parameters together (without padding).
    pub fn total(&self) -> i64 {
        self.total
    }

    /// Elements of every rank's shard.
    pub fn shard_len(&self) -> i64 {
        self.shard_len
    }

    /// Length of the flat vector with its padding: `world * shard_len`.
    pub fn padded(&self) -> i64 {
        self.shard_len * self.world
    }

    /// Where parameter `i` lies in the flat vector.
    pub fn span(&self, i: usize) -> Range<i64> {
        self.offsets[i]..self.offsets[i] + self.numels[i]
    }

    /// This rank's shard in the flat vector.
    pub fn shard(&self) -> Range<i64> {
        self.rank * self.shard_len..(self.rank + 1) * self.shard_len
    }

    /// The pieces of parameters inside this rank's shard, in flat order (none for a rank whose
    /// shard is all padding).
    pub fn pieces(&self) -> Vec<Piece> {
        let shard = self.shard();
        (0..self.numels.len())
            .filter_map(|i| {
                let span = self.span(i);
                let start = span.start.max(shard.start);
                let end = span.end.min(shard.end);
                (start < end).then(|| Piece {
                    param: i,
                    param_offset: start - span.start,
                    shard_offset: start - shard.start,
                    len: end - start,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_element_lies_in_exactly_one_rank_s_shard() {
        for numels in [vec![5, 1, 7], vec![1], vec![4, 4], vec![3, 0, 2]] {
            for world in 1..6 {
                let total: i64 = numels.iter().sum();
                let mut owner = vec![0u32; total as usize];
                for rank in 0..world {
                    let layout = ShardLayout::new(&numels, rank, world);
                    assert_eq!(layout.padded() % world as i64, 0);
                    assert!(layout.padded() - total < world as i64);
                    for p in layout.pieces() {
                        assert!(p.len > 0);
                        assert!(p.shard_offset + p.len <= layout.shard_len());
                        let flat = layout.span(p.param).start + p.param_offset;
                        // The piece sits at the same flat position from both sides.
                        assert_eq!(flat, layout.shard().start + p.shard_offset);
                        for e in flat..flat + p.len {
                            owner[e as usize] += 1;
                        }
                    }
                }
                assert!(owner.iter().all(|&n| n == 1), "{numels:?} / {world}");
            }
        }
    }

    #[test]
    fn a_parameter_straddling_two_shards_is_cut_where_the_shards_meet() {
        // 5 + 1 + 7 = 13 elements over 2 ranks: shards of 7, the third parameter split 1 + 6.
        let r0 = ShardLayout::new(&[5, 1, 7], 0, 2).pieces();
        let r1 = ShardLayout::new(&[5, 1, 7], 1, 2).pieces();
        let piece = |param, param_offset, shard_offset, len| Piece {
            param,
            param_offset,
            shard_offset,
            len,
        };
        assert_eq!(
            r0,
            vec![piece(0, 0, 0, 5), piece(1, 0, 5, 1), piece(2, 0, 6, 1)]
        );
        assert_eq!(r1, vec![piece(2, 1, 0, 6)]);
    }
}
