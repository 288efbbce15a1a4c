//! Validation loss with the SD3 paper's protocol (docs/protocol.md section 4, torchtitan-style):
//! fixed held-out samples, fixed noise, `L` equally spaced levels in [0, 1] (or inside (0, 1),
//! [`ValidationGrid`]); reported per level and as the mean over all levels but t = 1.
//!
//! Levels are RF-equivalent times `t_eq` (equal log-SNR), so every family is probed at the same
//! noise levels; a level outside what a family can evaluate (the LDM schedule's range, EDM's
//! infinite sigma at t = 1 and infinite weight at t = 0) is clamped to
//! [`Formulation::validation_t_eq_range`]. The loss is the
//! formulation's own training loss (its target and weight). Per-sample losses are accumulated in
//! float64 in sample order, so the result does not depend on the evaluation batch size (up to the
//! backbone's own floating-point batch dependence) or on how samples are split over processes.

use crate::cond_input::CondInput;
use crate::config::ValidationGrid;
use crate::error::{Result, TrainError};
use flowscale_formulations::Formulation;
use tch::{Kind, Tensor};

/// Fixed validation inputs: samples, what they are conditioned on and their noise.
#[derive(Debug)]
pub struct ValidationSet {
    /// Float data `[N, C, H, W]`.
    pub x0: Tensor,
    /// Labels or captions of the `N` samples.
    pub cond: CondInput,
    /// Fixed noise `[N, C, H, W]`, the same at every level and every evaluation.
    pub noise: Tensor,
}

impl ValidationSet {
    /// Draws the fixed noise from `seed` (torch's generator is reseeded; callers reseed their own
    /// streams per batch anyway).
    pub fn new(x0: Tensor, cond: CondInput, seed: u64) -> Result<Self> {
        let noise = flowscale_formulations::with_torch_seed((seed >> 1) as i64, || {
            Tensor::f_randn(x0.size().as_slice(), (x0.kind(), x0.device()))
        })?;
        Ok(Self { x0, cond, noise })
    }

    pub fn len(&self) -> usize {
        self.x0.size()[0] as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The result of one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationLoss {
    /// `(t_eq, mean loss)` per level, t from 0 to 1.
    pub levels: Vec<(f64, f64)>,
    /// Mean over all levels but t = 1 (the paper's headline number).
    pub mean: f64,
}

/// The level grid: `levels` equally spaced t in [0, 1] (`Closed`) or inside (0, 1)
/// (`Interior`), increasing.
pub fn level_grid(levels: u32, grid: ValidationGrid) -> Vec<f64> {
    match grid {
        ValidationGrid::Closed => {
            let n = levels.max(2);
            (0..n).map(|k| k as f64 / (n - 1) as f64).collect()
        }
        ValidationGrid::Interior => {
            let n = levels.max(1);
            (1..=n).map(|k| k as f64 / (n + 1) as f64).collect()
        }
    }
}

/// Evaluates `forward(net_input, time_input, conditioning input) -> raw output` on the
/// validation set.
pub fn validation_loss<F>(
    formulation: Formulation,
    set: &ValidationSet,
    levels: &[f64],
    batch_size: usize,
    forward: F,
) -> Result<ValidationLoss>
where
    F: Fn(&Tensor, &Tensor, &CondInput) -> Result<Tensor>,
{
    let sums = level_sums(formulation, set, levels, batch_size, 0..set.len(), forward)?;
    Ok(from_level_sums(&sums, set.len()))
}

/// Per level `(t_eq, summed per-sample loss)` over the samples in `range` of the set: the
/// part one data-parallel rank evaluates; the sums of all ranks make the full set's loss.
pub fn level_sums<F>(
    formulation: Formulation,
    set: &ValidationSet,
    levels: &[f64],
    batch_size: usize,
    range: std::ops::Range<usize>,
    forward: F,
) -> Result<Vec<(f64, f64)>>
where
    F: Fn(&Tensor, &Tensor, &CondInput) -> Result<Tensor>,
{
    if batch_size == 0 || set.is_empty() || range.end > set.len() {
        return Err(TrainError::Invalid(format!(
            "validation needs at least one sample and a positive batch size (samples {}, \
             batch {batch_size}, range {range:?})",
            set.len()
        )));
    }
    let (lo, hi) = formulation.validation_t_eq_range();
    let path = formulation.path();
    let mut out = Vec::new();
    let _guard = tch::no_grad_guard();
    for &t_eq in levels {
        let native = path.t_from_t_eq(t_eq.clamp(lo, hi));
        let mut sum = 0.0f64;
        let mut start = range.start;
        while start < range.end {
            let len = batch_size.min(range.end - start);
            let x0 = set.x0.f_narrow(0, start as i64, len as i64)?;
            let noise = set.noise.f_narrow(0, start as i64, len as i64)?;
            let cond = set.cond.narrow(start as i64, len as i64)?;
            let batch = formulation.training_batch_with(&x0, &noise, &vec![native; len])?;
            let pred = forward(&batch.net_input, &batch.time_input, &cond)?;
            let per = batch
                .per_sample_loss(&pred.f_to_kind(batch.target.kind())?)?
                .f_to_kind(Kind::Double)?;
            let values: Vec<f64> = Vec::<f64>::try_from(&per)?;
            sum += values.iter().sum::<f64>();
            start += len;
        }
        out.push((t_eq, sum));
    }
    Ok(out)
}

/// The validation loss from per-level sums over `n` samples.
pub fn from_level_sums(sums: &[(f64, f64)], n: usize) -> ValidationLoss {
    let levels: Vec<(f64, f64)> = sums.iter().map(|(t, s)| (*t, s / n as f64)).collect();
    let below_one: Vec<f64> = levels
        .iter()
        .filter(|(t, _)| *t < 1.0)
        .map(|(_, l)| *l)
        .collect();
    let mean = below_one.iter().sum::<f64>() / below_one.len() as f64;
    ValidationLoss { levels, mean }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> ValidationSet {
        tch::manual_seed(3);
        let x0 = Tensor::randn([10, 2, 3, 3], (Kind::Float, tch::Device::Cpu)) * 0.5 + 0.2;
        let labels = Tensor::zeros([10], (Kind::Int64, tch::Device::Cpu));
        ValidationSet::new(x0, CondInput::Labels(labels), 11).unwrap()
    }

    fn paper() -> Vec<f64> {
        level_grid(8, ValidationGrid::Closed)
    }

    #[test]
    fn grid_has_the_papers_eight_levels() {
        let g = level_grid(8, ValidationGrid::Closed);
        assert_eq!(g.len(), 8);
        assert_eq!((g[0], g[7]), (0.0, 1.0));
        assert!((g[1] - 1.0 / 7.0).abs() < 1e-15);
        // Inside (0, 1): 1/9 .. 8/9, none at an end.
        let g = level_grid(8, ValidationGrid::Interior);
        assert_eq!(g.len(), 8);
        assert!((g[0] - 1.0 / 9.0).abs() < 1e-15 && (g[7] - 8.0 / 9.0).abs() < 1e-15);
    }

    #[test]
    fn rf_zero_network_loss_is_the_target_energy_and_batch_size_free() {
        // A network that always outputs 0 has RF loss E||eps - x0||^2 at every level: a number
        // computable directly from the fixed set.
        let s = set();
        let form = Formulation::parse("rf/lognorm(0.00, 1.00)").unwrap();
        let zero = |x: &Tensor, _t: &Tensor, _l: &CondInput| Ok(x.zeros_like());
        let a = validation_loss(form, &s, &paper(), 3, zero).unwrap();
        let b = validation_loss(form, &s, &paper(), 10, zero).unwrap();
        assert_eq!(a, b);
        let expect = (&s.noise - &s.x0)
            .square()
            .mean(Kind::Double)
            .double_value(&[]);
        for (_, l) in &a.levels {
            assert!((l - expect).abs() < 1e-6 * expect, "{l} vs {expect}");
        }
        assert!((a.mean - expect).abs() < 1e-6 * expect);
    }

    #[test]
    fn every_formulation_has_a_finite_loss_at_every_level() {
        // EDM's weight is infinite at sigma = 0: an unclamped t = 0 level made the mean NaN,
        // which the checkpoint state cannot store.
        let s = set();
        let zero = |x: &Tensor, _t: &Tensor, _l: &CondInput| Ok(x.zeros_like());
        let all = flowscale_formulations::registry::registry();
        assert_eq!(all.len(), 61);
        for form in all {
            let r = validation_loss(form, &s, &paper(), 10, zero).unwrap();
            assert!(
                r.mean.is_finite() && r.levels.iter().all(|(_, l)| l.is_finite()),
                "{form}: {:?}",
                r.levels
            );
        }
    }

    #[test]
    fn mean_excludes_t_one() {
        // A "network" that is perfect except at t = 1 (time input 1000): the headline mean must
        // not see its error.
        let s = set();
        let form = Formulation::parse("rf").unwrap();
        let target = &s.noise - &s.x0;
        let net = |x: &Tensor, t: &Tensor, _l: &CondInput| {
            let at_one = t.double_value(&[0]) >= 999.999;
            let n = x.size()[0];
            let good = target.narrow(0, 0, n);
            Ok(if at_one { good + 1.0 } else { good })
        };
        let r = validation_loss(form, &s, &paper(), 10, net).unwrap();
        assert!(r.mean < 1e-10, "{}", r.mean);
        assert!((r.levels[7].1 - 1.0).abs() < 1e-6);
        assert!(r.levels[..7].iter().all(|(_, l)| *l < 1e-10));
        // The interior grid has no t = 1 level: its mean is every level's, all perfect here.
        let interior = level_grid(8, ValidationGrid::Interior);
        let r = validation_loss(form, &s, &interior, 10, net).unwrap();
        assert_eq!(r.levels.len(), 8);
        assert!(r.mean < 1e-10 && r.levels.iter().all(|(t, _)| *t > 0.0 && *t < 1.0));
    }
}
