//! The two-variable scaling law `L(N, S) = a (N / N0)^(-alpha) + b (S / S0)^(-beta) + c`:
//! validation loss against model size `N` (parameters) and training steps `S`, fitted over every
//! validation point of every run of a scaling sweep, with percentile-bootstrap intervals.
//!
//! The additive form separates what more parameters and more steps each remove from the
//! reducible loss (the form of Hoffmann et al.'s parametric fit, with steps in place of tokens,
//! as the batch is fixed within a sweep). Method, as for the one-variable law in [`crate::fit`]:
//! variable projection. For fixed exponents the model is linear in `(a, b, c)`, solved by
//! weighted least squares (weights `1 / L^2`, the first-order form of log residuals); the
//! exponents are found by a scan of a log grid followed by alternating golden-section
//! refinement; the score is the sum of squared log residuals. `N0` and `S0` are the geometric
//! means of the inputs. Solutions with a negative `a`, `b` or `c` are rejected, so the fit is the
//! best law that falls with size and steps towards a non-negative floor.

use crate::fit::{bootstrap_indices, distinct_count, geometric_mean, golden, percentile_ci};
use crate::fit_bounds::{check, Exponent, Unconstrained};
use flowscale_formulations::FlowRng;

/// Fitted parameters of `L(N, S)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SizeStepsLaw {
    pub a: f64,
    pub alpha: f64,
    pub b: f64,
    pub beta: f64,
    pub c: f64,
    pub n0: f64,
    pub s0: f64,
}

impl SizeStepsLaw {
    pub fn eval(&self, n: f64, s: f64) -> f64 {
        self.a * (n / self.n0).powf(-self.alpha) + self.b * (s / self.s0).powf(-self.beta) + self.c
    }
}

/// A fit with 95% percentile-bootstrap intervals.
#[derive(Debug, Clone, PartialEq)]
pub struct SizeStepsFit {
    pub law: SizeStepsLaw,
    pub a_ci: (f64, f64),
    pub alpha_ci: (f64, f64),
    pub b_ci: (f64, f64),
    pub beta_ci: (f64, f64),
    pub c_ci: (f64, f64),
    pub rms_log_residual: f64,
    pub resamples: usize,
    pub points: usize,
}

const E_MIN: f64 = 1e-3;
const E_MAX: f64 = 4.0;

impl SizeStepsFit {
    /// The exponents the data do not constrain (see [`crate::fit_bounds`]: estimate or
    /// bootstrap interval on an end of `[E_MIN, E_MAX]`, or the interval of the term's amplitude
    /// reaching 0), `alpha` then `beta`; empty when both are constrained. With either one free
    /// the law is not a result: the other terms were fitted around an exponent the search chose.
    pub fn unconstrained(&self) -> Vec<Unconstrained> {
        let exponent = |name, value, ci, amplitude, amplitude_ci| Exponent {
            name,
            value,
            ci,
            range: (E_MIN, E_MAX),
            amplitude,
            amplitude_ci,
        };
        [
            exponent("alpha", self.law.alpha, self.alpha_ci, "a", self.a_ci),
            exponent("beta", self.law.beta, self.beta_ci, "b", self.b_ci),
        ]
        .into_iter()
        .filter_map(check)
        .collect()
    }
}

/// Solves the 3x3 system `m x = r` by Gaussian elimination with partial pivoting.
fn solve3(mut m: [[f64; 3]; 3], mut r: [f64; 3]) -> Option<[f64; 3]> {
    for col in 0..3 {
        let piv = (col..3).max_by(|&i, &j| m[i][col].abs().total_cmp(&m[j][col].abs()))?;
        if m[piv][col].abs() < 1e-300 {
            return None;
        }
        m.swap(col, piv);
        r.swap(col, piv);
        for row in col + 1..3 {
            let f = m[row][col] / m[col][col];
            let pivot_row = m[col];
            for (x, p) in m[row].iter_mut().zip(pivot_row).skip(col) {
                *x -= f * p;
            }
            r[row] -= f * r[col];
        }
    }
    let mut x = [0.0; 3];
    for row in (0..3).rev() {
        let s: f64 = (row + 1..3).map(|k| m[row][k] * x[k]).sum();
        x[row] = (r[row] - s) / m[row][row];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

/// `(a, b, c)` for fixed exponents on normalised inputs, and the log-residual sum of squares.
fn solve_linear(n: &[f64], s: &[f64], y: &[f64], alpha: f64, beta: f64) -> Option<([f64; 3], f64)> {
    let mut m = [[0.0; 3]; 3];
    let mut r = [0.0; 3];
    for i in 0..y.len() {
        let f = [n[i].powf(-alpha), s[i].powf(-beta), 1.0];
        let w = 1.0 / (y[i] * y[i]);
        for j in 0..3 {
            r[j] += w * f[j] * y[i];
            for k in 0..3 {
                m[j][k] += w * f[j] * f[k];
            }
        }
    }
    let x = solve3(m, r)?;
    // A law that improves with size and steps towards a non-negative floor: a huge `a` with a
    // vanishing exponent and a negative `c` fits a few sizes equally well but means nothing.
    if x.iter().any(|v| *v < 0.0) {
        return None;
    }
    let mut sse = 0.0;
    for i in 0..y.len() {
        let model = x[0] * n[i].powf(-alpha) + x[1] * s[i].powf(-beta) + x[2];
        if model <= 0.0 {
            return None;
        }
        sse += (y[i].ln() - model.ln()).powi(2);
    }
    Some((x, sse))
}

/// The fit on normalised inputs: `(a, alpha, b, beta, c, sse)`.
fn fit_normalised(n: &[f64], s: &[f64], y: &[f64]) -> Option<([f64; 5], f64)> {
    let score = |al: f64, be: f64| solve_linear(n, s, y, al, be).map_or(f64::INFINITY, |(_, e)| e);
    let k = 48;
    let grid: Vec<f64> = (0..=k)
        .map(|i| (E_MIN.ln() + (E_MAX.ln() - E_MIN.ln()) * i as f64 / k as f64).exp())
        .collect();
    let mut best = (f64::INFINITY, 0, 0);
    for (i, &al) in grid.iter().enumerate() {
        for (j, &be) in grid.iter().enumerate() {
            let e = score(al, be);
            if e < best.0 {
                best = (e, i, j);
            }
        }
    }
    if !best.0.is_finite() {
        return None;
    }
    let cell = |i: usize| (grid[i.saturating_sub(1)], grid[(i + 1).min(k)]);
    let (mut al, mut be) = (grid[best.1], grid[best.2]);
    let ((alo, ahi), (blo, bhi)) = (cell(best.1), cell(best.2));
    // Alternating one-dimensional refinements inside the best grid cell.
    for _ in 0..6 {
        al = golden(alo, ahi, 60, &|x| score(x, be));
        be = golden(blo, bhi, 60, &|x| score(al, x));
    }
    let (x, sse) = solve_linear(n, s, y, al, be)?;
    Some(([x[0], al, x[1], be, x[2]], sse))
}

/// Fits `L(N, S)` to `(params, steps, loss)` points. `None` when the points cannot determine
/// the law: non-positive or non-finite values, fewer than 3 distinct sizes or 3 distinct step
/// counts, fewer than 6 points, or no valid fit.
pub fn fit_size_steps(
    params: &[f64],
    steps: &[f64],
    loss: &[f64],
    resamples: usize,
    seed: u64,
) -> Option<SizeStepsFit> {
    let len = loss.len();
    if params.len() != len
        || steps.len() != len
        || len < 6
        || params
            .iter()
            .chain(steps)
            .chain(loss)
            .any(|v| !v.is_finite() || *v <= 0.0)
        || distinct_count(params) < 3
        || distinct_count(steps) < 3
    {
        return None;
    }
    let (n0, s0) = (geometric_mean(params), geometric_mean(steps));
    let n: Vec<f64> = params.iter().map(|v| v / n0).collect();
    let s: Vec<f64> = steps.iter().map(|v| v / s0).collect();
    let (p, sse) = fit_normalised(&n, &s, loss)?;
    let mut rng = FlowRng::new(seed);
    let mut draws: [Vec<f64>; 5] = Default::default();
    for _ in 0..resamples {
        let idx = bootstrap_indices(&mut rng, len);
        let pick = |v: &[f64]| idx.iter().map(|&i| v[i]).collect::<Vec<f64>>();
        let (ns, ss, ys) = (pick(&n), pick(&s), pick(loss));
        if distinct_count(&ns) < 2 || distinct_count(&ss) < 2 {
            continue;
        }
        if let Some((q, _)) = fit_normalised(&ns, &ss, &ys) {
            for (d, v) in draws.iter_mut().zip(q) {
                d.push(v);
            }
        }
    }
    let resampled = draws[0].len();
    let [a, alpha, b, beta, c] = p;
    Some(SizeStepsFit {
        law: SizeStepsLaw {
            a,
            alpha,
            b,
            beta,
            c,
            n0,
            s0,
        },
        a_ci: percentile_ci(&mut draws[0], a),
        alpha_ci: percentile_ci(&mut draws[1], alpha),
        b_ci: percentile_ci(&mut draws[2], b),
        beta_ci: percentile_ci(&mut draws[3], beta),
        c_ci: percentile_ci(&mut draws[4], c),
        rms_log_residual: (sse / len as f64).sqrt(),
        resamples: resampled,
        points: len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points from a known law on a 4 sizes x 6 step counts grid, with 1% multiplicative
    /// noise: the fit recovers both exponents inside their intervals, and the intervals are
    /// informative (narrower than the exponents themselves).
    #[test]
    fn recovers_a_known_law() {
        let truth = SizeStepsLaw {
            a: 0.3,
            alpha: 0.45,
            b: 0.2,
            beta: 0.7,
            c: 0.25,
            n0: 3e6,
            s0: 500.0,
        };
        let mut rng = FlowRng::new(7);
        let (mut n, mut s, mut y) = (vec![], vec![], vec![]);
        for &p in &[4e5, 1.5e6, 6e6, 2.4e7] {
            for &st in &[100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0] {
                n.push(p);
                s.push(st);
                y.push(truth.eval(p, st) * (1.0 + 0.01 * rng.normal()));
            }
        }
        let fit = fit_size_steps(&n, &s, &y, 300, 1).unwrap();
        let l = fit.law;
        assert!(
            fit.alpha_ci.0 <= truth.alpha && truth.alpha <= fit.alpha_ci.1,
            "alpha {} CI {:?}",
            l.alpha,
            fit.alpha_ci
        );
        assert!(
            fit.beta_ci.0 <= truth.beta && truth.beta <= fit.beta_ci.1,
            "beta {} CI {:?}",
            l.beta,
            fit.beta_ci
        );
        assert!(fit.alpha_ci.1 - fit.alpha_ci.0 < truth.alpha);
        assert!(fit.beta_ci.1 - fit.beta_ci.0 < truth.beta);
        assert!((l.alpha - truth.alpha).abs() < 0.15, "{l:?}");
        assert!((l.beta - truth.beta).abs() < 0.15, "{l:?}");
        assert!(fit.rms_log_residual < 0.02);
        assert_eq!(fit.unconstrained(), [], "{fit:?}");
        // Predictions at the grid's corners match the truth within the noise.
        for (p, st) in [(4e5, 100.0), (2.4e7, 3200.0)] {
            let rel = (l.eval(p, st) - truth.eval(p, st)).abs() / truth.eval(p, st);
            assert!(rel < 0.02, "{rel}");
        }
    }

    /// Exact data: the fit is exact.
    #[test]
    fn exact_data_is_fitted_exactly() {
        let truth = SizeStepsLaw {
            a: 1.0,
            alpha: 0.3,
            b: 0.5,
            beta: 1.1,
            c: 0.1,
            n0: 1.0,
            s0: 1.0,
        };
        let (mut n, mut s, mut y) = (vec![], vec![], vec![]);
        for &p in &[1.0, 2.0, 4.0, 8.0] {
            for &st in &[1.0, 3.0, 9.0] {
                n.push(p);
                s.push(st);
                y.push(truth.eval(p, st));
            }
        }
        let fit = fit_size_steps(&n, &s, &y, 0, 0).unwrap();
        assert!((fit.law.alpha - 0.3).abs() < 1e-3, "{:?}", fit.law);
        assert!((fit.law.beta - 1.1).abs() < 1e-3, "{:?}", fit.law);
        assert!(fit.rms_log_residual < 1e-6);
    }

    #[test]
    fn underdetermined_inputs_give_none() {
        // Two sizes only.
        let n = [1.0, 1.0, 1.0, 2.0, 2.0, 2.0];
        let s = [1.0, 2.0, 4.0, 1.0, 2.0, 4.0];
        let y = [1.0, 0.9, 0.8, 0.9, 0.8, 0.7];
        assert!(fit_size_steps(&n, &s, &y, 10, 0).is_none());
        // A non-positive loss.
        let n = [1.0, 2.0, 3.0, 1.0, 2.0, 3.0];
        let s = [1.0, 2.0, 3.0, 2.0, 3.0, 1.0];
        let y = [1.0, 0.9, 0.0, 0.9, 0.8, 0.7];
        assert!(fit_size_steps(&n, &s, &y, 10, 0).is_none());
    }

    /// Losses that fall with steps, while size changes them by less than the 1% noise: beta
    /// is measured, alpha is flagged as not constrained.
    #[test]
    fn a_size_effect_below_the_noise_leaves_alpha_unconstrained() {
        for seed in 1..=6 {
            let mut rng = FlowRng::new(seed);
            let (mut n, mut s, mut y) = (vec![], vec![], vec![]);
            for p in [4e5f64, 1.5e6, 6e6] {
                for st in [100.0f64, 200.0, 400.0, 800.0, 1600.0] {
                    n.push(p);
                    s.push(st);
                    let law = 0.3 + 0.01 * (p / 1e6).powf(-0.3) + 2.0 * st.powf(-0.5);
                    y.push(law * (1.0 + 0.01 * rng.normal()));
                }
            }
            let fit = fit_size_steps(&n, &s, &y, 200, 1).unwrap();
            let free: Vec<&str> = fit.unconstrained().iter().map(|u| u.parameter).collect();
            assert_eq!(free, ["alpha"], "seed {seed}: {fit:?}");
        }
    }
}
