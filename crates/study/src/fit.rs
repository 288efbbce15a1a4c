//! Power-law fits `L(C) = a · (C / C0)^(-b) + c` with bootstrap confidence intervals: validation
//! loss against training compute (or steps, or parameters).
//!
//! Method: variable projection. For a fixed exponent `b` the model is linear in `(a, c)`, solved
//! exactly by least squares; the remaining one-dimensional problem in `b` is minimised by a grid
//! scan and golden-section refinement. This never diverges (unlike Gauss-Newton from a poor start)
//! and finds the global minimum in `b` on the searched range. `C0` is the geometric mean of the
//! inputs, so `a` is the reducible loss at the typical compute of the data rather than at `C = 1`.
//! Residuals are taken in log space, `log L - log model`, so every decade of loss weighs the same
//! (loss noise is roughly multiplicative).
//! Confidence intervals: the percentile bootstrap over points (resampling with replacement).

use crate::fit_bounds::{check, Exponent, Unconstrained};
use flowscale_formulations::FlowRng;

/// Fitted parameters of `L(C) = a (C / c0)^(-b) + c`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PowerLaw {
    pub a: f64,
    pub b: f64,
    pub c: f64,
    pub c0: f64,
}

impl PowerLaw {
    pub fn eval(&self, x: f64) -> f64 {
        self.a * (x / self.c0).powf(-self.b) + self.c
    }
}

/// A fit with its bootstrap intervals (2.5 and 97.5 percentiles) and residual error.
#[derive(Debug, Clone, PartialEq)]
pub struct PowerLawFit {
    pub law: PowerLaw,
    pub a_ci: (f64, f64),
    pub b_ci: (f64, f64),
    pub c_ci: (f64, f64),
    /// Root-mean-square log residual of the point estimate.
    pub rms_log_residual: f64,
    /// Bootstrap resamples that produced a fit.
    pub resamples: usize,
}

const B_MIN: f64 = 1e-3;
const B_MAX: f64 = 4.0;

impl PowerLawFit {
    /// The exponent, when the data do not constrain it (see [`crate::fit_bounds`]): its estimate
    /// or bootstrap interval reaches the searched range `[B_MIN, B_MAX]`, or the interval of
    /// `a` includes 0. Such a law is not a result: `a` and `c` were fitted for an exponent the
    /// search chose.
    pub fn unconstrained(&self) -> Option<Unconstrained> {
        check(Exponent {
            name: "b",
            value: self.law.b,
            ci: self.b_ci,
            range: (B_MIN, B_MAX),
            amplitude: "a",
            amplitude_ci: self.a_ci,
        })
    }
}

/// Least-squares `(a, c)` for fixed `b` and its log-residual sum of squares. In log space the
/// problem is not linear, so `(a, c)` solve the linear least squares in loss space with weights
/// `1 / L^2` (the first-order equivalent of log residuals), then the log residuals are scored.
fn solve_linear(x: &[f64], y: &[f64], b: f64) -> Option<(f64, f64, f64)> {
    let (mut sw, mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (&xi, &yi) in x.iter().zip(y) {
        let u = xi.powf(-b);
        let w = 1.0 / (yi * yi);
        sw += w;
        sx += w * u;
        sy += w * yi;
        sxx += w * u * u;
        sxy += w * u * yi;
    }
    let det = sw * sxx - sx * sx;
    if det.abs() < 1e-300 {
        return None;
    }
    let a = (sw * sxy - sx * sy) / det;
    let c = (sy - a * sx) / sw;
    let mut sse = 0.0;
    for (&xi, &yi) in x.iter().zip(y) {
        let m = a * xi.powf(-b) + c;
        if m <= 0.0 {
            return None;
        }
        sse += (yi.ln() - m.ln()).powi(2);
    }
    Some((a, c, sse))
}

/// The fit on normalised inputs `x = C / c0`.
fn fit_normalised(x: &[f64], y: &[f64]) -> Option<(f64, f64, f64, f64)> {
    let score = |b: f64| solve_linear(x, y, b).map_or(f64::INFINITY, |(_, _, s)| s);
    // Coarse scan on a log grid, then golden-section search around the best cell.
    let n = 200;
    let grid: Vec<f64> = (0..=n)
        .map(|i| (B_MIN.ln() + (B_MAX.ln() - B_MIN.ln()) * i as f64 / n as f64).exp())
        .collect();
    let best = (0..grid.len()).min_by(|&i, &j| score(grid[i]).total_cmp(&score(grid[j])))?;
    let b = golden(
        grid[best.saturating_sub(1)],
        grid[(best + 1).min(n)],
        100,
        &score,
    );
    let (a, c, sse) = solve_linear(x, y, b)?;
    Some((a, b, c, sse))
}

/// The minimum of a unimodal `f` on `[lo, hi]` by `iters` golden-section steps.
pub(crate) fn golden(lo: f64, hi: f64, iters: usize, f: &dyn Fn(f64) -> f64) -> f64 {
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let (mut lo, mut hi) = (lo, hi);
    for _ in 0..iters {
        let m1 = hi - g * (hi - lo);
        let m2 = lo + g * (hi - lo);
        if f(m1) < f(m2) {
            hi = m2;
        } else {
            lo = m1;
        }
    }
    0.5 * (lo + hi)
}

/// How many different values `v` holds.
pub(crate) fn distinct_count(v: &[f64]) -> usize {
    let mut d = v.to_vec();
    d.sort_by(f64::total_cmp);
    d.dedup();
    d.len()
}

/// The geometric mean of positive values: the normalising scale of the fits.
pub(crate) fn geometric_mean(v: &[f64]) -> f64 {
    (v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp()
}

/// `n` indices drawn with replacement: one bootstrap resample.
pub(crate) fn bootstrap_indices(rng: &mut FlowRng, n: usize) -> Vec<usize> {
    (0..n)
        .map(|_| (rng.uniform() * n as f64) as usize % n)
        .collect()
}

/// The 95% percentile interval of bootstrap draws `v` (sorted in place); `(point, point)` when
/// no resample gave a fit.
pub(crate) fn percentile_ci(v: &mut [f64], point: f64) -> (f64, f64) {
    if v.is_empty() {
        return (point, point);
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((q * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)];
    (at(0.025), at(0.975))
}

/// Fits `L(C) = a (C / C0)^(-b) + c` to `(compute, loss)` points (all positive) and bootstraps
/// `resamples` times with the given seed. `None` when the points cannot determine the law
/// (fewer than 4 distinct compute values, non-positive values, or no valid fit).
pub fn fit_power_law(
    compute: &[f64],
    loss: &[f64],
    resamples: usize,
    seed: u64,
) -> Option<PowerLawFit> {
    if compute.len() != loss.len()
        || compute
            .iter()
            .chain(loss)
            .any(|v| !v.is_finite() || *v <= 0.0)
    {
        return None;
    }
    if distinct_count(compute) < 4 {
        return None;
    }
    let c0 = geometric_mean(compute);
    let x: Vec<f64> = compute.iter().map(|v| v / c0).collect();
    let (a, b, c, sse) = fit_normalised(&x, loss)?;
    let mut rng = FlowRng::new(seed);
    let n = x.len();
    let (mut aa, mut bb, mut cc) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..resamples {
        let idx = bootstrap_indices(&mut rng, n);
        let xs: Vec<f64> = idx.iter().map(|&i| x[i]).collect();
        let ys: Vec<f64> = idx.iter().map(|&i| loss[i]).collect();
        if distinct_count(&xs) < 3 {
            continue;
        }
        if let Some((ra, rb, rc, _)) = fit_normalised(&xs, &ys) {
            aa.push(ra);
            bb.push(rb);
            cc.push(rc);
        }
    }
    let resampled = bb.len();
    Some(PowerLawFit {
        law: PowerLaw { a, b, c, c0 },
        a_ci: percentile_ci(&mut aa, a),
        b_ci: percentile_ci(&mut bb, b),
        c_ci: percentile_ci(&mut cc, c),
        rms_log_residual: (sse / n as f64).sqrt(),
        resamples: resampled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synthetic(noise: f64, seed: u64) -> (Vec<f64>, Vec<f64>) {
        // 3 sizes x 6 checkpoints, compute from 1e15 to 1e19 (the scaling study's range).
        let mut rng = FlowRng::new(seed);
        let truth = PowerLaw {
            a: 2.0,
            b: 0.3,
            c: 0.5,
            c0: 1e17,
        };
        let compute: Vec<f64> = (0..18)
            .map(|i| 1e15 * 10f64.powf(4.0 * i as f64 / 17.0))
            .collect();
        let loss = compute
            .iter()
            .map(|&x| truth.eval(x) * (1.0 + noise * rng.normal()))
            .collect();
        (compute, loss)
    }

    #[test]
    fn exact_data_gives_the_exact_law() {
        let (x, y) = synthetic(0.0, 1);
        let f = fit_power_law(&x, &y, 0, 0).unwrap();
        let c0 = f.law.c0;
        // Compare in the truth's normalisation: a' = a (c0 / 1e17)^b.
        let a_truth = 2.0 * (c0 / 1e17).powf(-0.3);
        assert!((f.law.b - 0.3).abs() < 1e-6, "{f:?}");
        assert!((f.law.c - 0.5).abs() < 1e-6, "{f:?}");
        assert!((f.law.a - a_truth).abs() < 1e-6 * a_truth, "{f:?}");
        assert!(f.rms_log_residual < 1e-9);
    }

    #[test]
    fn noisy_data_recover_the_exponent_within_the_interval() {
        // Several noise draws: the true exponent lies inside the 95% interval each time, and the
        // interval is informative (narrower than the exponent itself).
        for seed in 1..=5 {
            let (x, y) = synthetic(0.01, seed);
            let f = fit_power_law(&x, &y, 400, seed).unwrap();
            assert!(f.resamples > 350, "{f:?}");
            assert!(f.b_ci.0 <= 0.3 && 0.3 <= f.b_ci.1, "seed {seed}: {f:?}");
            assert!(f.b_ci.1 - f.b_ci.0 < 0.3, "seed {seed}: {f:?}");
            assert!(f.c_ci.0 <= 0.5 && 0.5 <= f.c_ci.1, "seed {seed}: {f:?}");
        }
    }

    #[test]
    fn a_wrong_exponent_falls_outside_the_interval() {
        let (x, y) = synthetic(0.005, 9);
        let f = fit_power_law(&x, &y, 400, 9).unwrap();
        assert!(!(f.b_ci.0 <= 0.6 && 0.6 <= f.b_ci.1), "{f:?}");
        assert!(!(f.b_ci.0 <= 0.15 && 0.15 <= f.b_ci.1), "{f:?}");
    }

    #[test]
    fn degenerate_inputs_are_refused() {
        assert!(fit_power_law(&[1.0, 2.0, 3.0], &[1.0, 0.9, 0.8], 10, 0).is_none());
        assert!(fit_power_law(&[1.0, 2.0, 3.0, 4.0], &[1.0, -0.9, 0.8, 0.7], 10, 0).is_none());
        assert!(fit_power_law(&[1.0, 1.0, 1.0, 1.0], &[1.0, 0.9, 0.8, 0.7], 10, 0).is_none());
    }

    /// 1% noise on a real power law over four decades: the exponent is measured, not flagged.
    #[test]
    fn a_measured_exponent_is_not_flagged() {
        for seed in 1..=5 {
            let (x, y) = synthetic(0.01, seed);
            let f = fit_power_law(&x, &y, 400, seed).unwrap();
            assert_eq!(f.unconstrained(), None, "seed {seed}: {f:?}");
        }
    }

    /// Losses that do not fall with compute (4 points of noise around a constant, or exactly
    /// flat): whatever exponent the search returns, it is flagged, with its value and interval.
    #[test]
    fn losses_without_a_trend_leave_the_exponent_unconstrained() {
        let x: Vec<f64> = (0..4).map(|i| 1e15 * 10f64.powi(i)).collect();
        for seed in 1..=8 {
            let mut rng = FlowRng::new(seed);
            let y: Vec<f64> = x.iter().map(|_| 1.0 + 0.05 * rng.normal()).collect();
            let f = fit_power_law(&x, &y, 500, seed).unwrap();
            let u = f
                .unconstrained()
                .unwrap_or_else(|| panic!("seed {seed}: {f:?}"));
            assert_eq!((u.parameter, u.value, u.ci), ("b", f.law.b, f.b_ci));
        }
        let flat = fit_power_law(&x, &[0.7; 4], 200, 1).unwrap();
        assert!(flat.unconstrained().is_some(), "{flat:?}");
    }
}
