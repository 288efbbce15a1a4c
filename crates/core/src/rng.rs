//! A small, seedable host-side random number generator.
//!
//! Why our own: timestep draws must be reproducible from a seed and identical on every device and
//! every version of dependencies; tch 0.24 exposes no per-call torch `Generator`. xoshiro256** seeded
//! through SplitMix64 is a standard, well-tested generator and needs twenty lines, so the crate
//! carries no RNG dependency. Timesteps (a few per batch) are drawn here; large noise tensors are
//! drawn by torch on the target device after reseeding torch from this generator (see
//! `flowscale_formulations::training`), so a batch is a pure function of the `FlowRng` state.

/// xoshiro256** generator (Blackman & Vigna), seeded via SplitMix64.
#[derive(Debug, Clone)]
pub struct FlowRng {
    state: [u64; 4],
}

impl FlowRng {
    /// A generator whose whole stream is determined by `seed`.
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        let mut next = || {
            sm = sm.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = sm;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Self {
            state: [next(), next(), next(), next()],
        }
    }

    /// The full generator state, for checkpoints: [`FlowRng::from_state`] continues the stream.
    pub fn state(&self) -> [u64; 4] {
        self.state
    }

    /// A generator continuing from a saved [`FlowRng::state`]. The all-zero state is the one
    /// xoshiro cannot leave, so it is rejected (None).
    pub fn from_state(state: [u64; 4]) -> Option<Self> {
        (state != [0; 4]).then_some(Self { state })
    }

    /// Next raw 64-bit output.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.state;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform draw in the open interval (0, 1): never exactly 0 or 1, so transforms such as
    /// `logit` or `tan(pi u / 2)` stay finite.
    pub fn uniform(&mut self) -> f64 {
        // 53 random bits, shifted by half an ulp away from 0.
        ((self.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal draw (Box-Muller; one of the pair is discarded for simplicity).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Uniform integer in `0..n` (n > 0), by rejection so it is exactly uniform.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "FlowRng::below(0)");
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % n;
            }
        }
    }

    /// Fisher-Yates: a uniformly random permutation of `items`, drawn from this stream.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FlowRng;

    #[test]
    fn saved_state_continues_the_same_stream() {
        let mut a = FlowRng::new(42);
        let _ = (a.next_u64(), a.uniform());
        let mut b = FlowRng::from_state(a.state()).unwrap();
        let from_a: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let from_b: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
        assert_eq!(from_a, from_b);
        assert_ne!(
            from_a,
            (0..5)
                .map(|_| FlowRng::new(43).next_u64())
                .collect::<Vec<_>>()
        );
        assert!(FlowRng::from_state([0; 4]).is_none());
    }
}
