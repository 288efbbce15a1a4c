//! The power-function EMAs a run tracks during training (`[ema] posthoc.stds`): one average per
//! std, in fp32, updated after every optimiser step with `beta_t = (1 - 1/t)^(gamma + 1)`
//! ([`super::profile::beta`]). The update depends on the step count alone, so restoring the
//! averages from a checkpoint is all a resumed run needs to continue bit-identically.

use super::profile::{beta, std_to_gamma};
use crate::error::Result;
use crate::weight_average::WeightAverage;
use std::collections::HashMap;
use tch::Tensor;

/// Checkpoint group (and weight-set) name of the power-function EMA of relative std `std`:
/// `phema-0.05`.
pub fn power_ema_group_name(std: f64) -> String {
    format!("phema-{std}")
}

pub struct PowerEmas {
    stds: Vec<f64>,
    gammas: Vec<f64>,
    /// One fp32 average per std.
    averages: Vec<WeightAverage>,
}

impl std::fmt::Debug for PowerEmas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PowerEmas")
            .field("stds", &self.stds)
            .field("gammas", &self.gammas)
            .finish()
    }
}

impl PowerEmas {
    /// Averages start as fp32 copies of `params`; the first update replaces them entirely
    /// (`beta_1 = 0`), so the initialisation never contributes.
    pub fn new(params: &[(String, Tensor)], stds: &[f64]) -> Result<Self> {
        let gammas = stds
            .iter()
            .map(|s| std_to_gamma(*s))
            .collect::<Result<Vec<_>>>()?;
        let averages = stds
            .iter()
            .map(|_| WeightAverage::copy_of(params))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            stds: stds.to_vec(),
            gammas,
            averages,
        })
    }

    pub fn stds(&self) -> &[f64] {
        &self.stds
    }

    pub fn gammas(&self) -> &[f64] {
        &self.gammas
    }

    /// Call after optimiser step `step` (1-based count of completed steps).
    pub fn after_step(&mut self, step: u64, params: &[(String, Tensor)]) -> Result<()> {
        for (k, gamma) in self.gammas.iter().enumerate() {
            // avg <- beta avg + (1 - beta) p
            self.averages[k].move_towards(params, 1.0 - beta(*gamma, step))?;
        }
        Ok(())
    }

    /// Averages of std index `k` as named tensors.
    pub fn named(&self, k: usize) -> Vec<(String, Tensor)> {
        self.averages[k].named()
    }

    /// Restores the averages of std index `k` from named tensors (all names, same shapes).
    pub fn load(&mut self, k: usize, values: &HashMap<String, Tensor>) -> Result<()> {
        let what = format!("power-function EMA std {}", self.stds[k]);
        self.averages[k].load(values, &what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the averages written out by hand: weights `(tau^(g+1) - (tau-1)^(g+1)) / t^(g+1)`
    /// for each step's value, which the update must reproduce.
    #[test]
    fn tracked_average_matches_the_unrolled_weights() {
        let p = Tensor::from_slice(&[0.0f32]);
        let params = vec![("w".to_string(), p.shallow_clone())];
        let mut emas = PowerEmas::new(&params, &[0.1, 0.2]).unwrap();
        let values = [3.0f64, -1.0, 4.0, 1.5, 9.0];
        for (i, v) in values.iter().enumerate() {
            let _ = p.shallow_clone().fill_(*v);
            emas.after_step(i as u64 + 1, &params).unwrap();
        }
        for k in 0..2 {
            let g = emas.gammas()[k];
            let t = values.len() as f64;
            let expected: f64 = values
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let tau = i as f64 + 1.0;
                    v * (tau.powf(g + 1.0) - (tau - 1.0).powf(g + 1.0)) / t.powf(g + 1.0)
                })
                .sum();
            let got = emas.named(k)[0].1.double_value(&[0]);
            assert!(
                (got - expected).abs() < 1e-5,
                "std index {k}: {got} vs {expected}"
            );
        }
        assert_eq!(power_ema_group_name(0.05), "phema-0.05");
    }
}
