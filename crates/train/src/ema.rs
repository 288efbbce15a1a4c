//! Exponential moving averages of the trained tensors: any number of decays at once, updated
//! every `every` optimiser steps (the paper: 0.99 every 100 steps), optionally with the usual
//! warm-up `decay_t = min(decay, (1 + n) / (10 + n))` over the update count n, so early averages
//! are not dominated by the random initialisation.

use crate::error::Result;
use crate::weight_average::WeightAverage;
use std::collections::HashMap;
use tch::Tensor;

pub struct Ema {
    decays: Vec<f64>,
    every: u64,
    warmup: bool,
    updates: u64,
    /// One average per decay.
    averages: Vec<WeightAverage>,
}

impl std::fmt::Debug for Ema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ema")
            .field("decays", &self.decays)
            .field("every", &self.every)
            .field("updates", &self.updates)
            .finish()
    }
}

impl Ema {
    /// Averages start as copies of `params`.
    pub fn new(
        params: &[(String, Tensor)],
        decays: &[f64],
        every: u64,
        warmup: bool,
    ) -> Result<Self> {
        let averages = decays
            .iter()
            .map(|_| WeightAverage::copy_of(params))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            decays: decays.to_vec(),
            every: every.max(1),
            warmup,
            updates: 0,
            averages,
        })
    }

    pub fn decays(&self) -> &[f64] {
        &self.decays
    }

    /// Updates performed so far.
    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// The decay used at the next update.
    fn effective(&self, decay: f64) -> f64 {
        if self.warmup {
            let n = self.updates as f64;
            decay.min((1.0 + n) / (10.0 + n))
        } else {
            decay
        }
    }

    /// Call after optimiser step `step` (1-based count of completed steps); updates when `step`
    /// is a multiple of `every`.
    pub fn after_step(&mut self, step: u64, params: &[(String, Tensor)]) -> Result<()> {
        if !step.is_multiple_of(self.every) {
            return Ok(());
        }
        for (k, decay) in self.decays.clone().into_iter().enumerate() {
            let d = self.effective(decay);
            // avg <- d avg + (1 - d) p
            self.averages[k].move_towards(params, 1.0 - d)?;
        }
        self.updates += 1;
        Ok(())
    }

    /// The averages of decay index `k`, in parameter order.
    pub fn averages(&self, k: usize) -> &[Tensor] {
        self.averages[k].values()
    }

    /// Averages of decay index `k` as named tensors.
    pub fn named(&self, k: usize) -> Vec<(String, Tensor)> {
        self.averages[k].named()
    }

    /// Restores the averages of decay index `k` from named tensors (all names, same shapes).
    pub fn load(&mut self, k: usize, values: &HashMap<String, Tensor>, updates: u64) -> Result<()> {
        let what = format!("EMA {}", self.decays[k]);
        self.averages[k].load(values, &what)?;
        self.updates = updates;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_on_schedule_with_hand_computed_values() {
        let p = Tensor::from_slice(&[1.0f64]);
        let params = vec![("w".to_string(), p.shallow_clone())];
        let mut ema = Ema::new(&params, &[0.5, 0.9], 2, false).unwrap();
        let mut target = p.shallow_clone();
        let _ = target.fill_(3.0);
        ema.after_step(1, &params).unwrap(); // not due
        assert_eq!(ema.averages(0)[0].double_value(&[0]), 1.0);
        ema.after_step(2, &params).unwrap();
        assert!((ema.averages(0)[0].double_value(&[0]) - 2.0).abs() < 1e-12);
        assert!((ema.averages(1)[0].double_value(&[0]) - 1.2).abs() < 1e-12);
        ema.after_step(4, &params).unwrap();
        assert!((ema.averages(0)[0].double_value(&[0]) - 2.5).abs() < 1e-12);
        assert!((ema.averages(1)[0].double_value(&[0]) - 1.38).abs() < 1e-12);
        assert_eq!(ema.updates(), 2);
    }

    #[test]
    fn warmup_limits_early_decay() {
        let p = Tensor::from_slice(&[0.0f64]);
        let params = vec![("w".to_string(), p.shallow_clone())];
        let mut ema = Ema::new(&params, &[0.999], 1, true).unwrap();
        let _ = p.shallow_clone().fill_(10.0);
        ema.after_step(1, &params).unwrap(); // decay min(0.999, 1/10) = 0.1
        assert!((ema.averages(0)[0].double_value(&[0]) - 9.0).abs() < 1e-12);
    }
}
