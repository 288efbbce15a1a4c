//! The maths of EDM2's power-function EMA (Karras et al. 2024, Sec. 3 and App. C).
//!
//! With exponent `gamma`, the average after step `t` (steps counted from 1) is
//! `avg_t = beta_t avg_{t-1} + (1 - beta_t) theta_t` with `beta_t = (1 - 1/t)^(gamma + 1)`.
//! Unrolled, step `tau` gets weight `(tau^(gamma+1) - (tau-1)^(gamma+1)) / t^(gamma+1)`: exactly
//! the integral over `[tau - 1, tau]` of the continuous profile `p(x) = (gamma + 1) x^gamma /
//! t^(gamma+1)` on `[0, t]`. So a tracked EMA is the continuous profile applied to the weights as
//! a step function of time, and the least-squares fit of profiles below carries over to the
//! averaged weights without a discretisation error.
//!
//! The profile's width relative to its length, `sigma_rel = sqrt((gamma + 1) / ((gamma + 2)^2
//! (gamma + 3)))`, is how EDM2 names an EMA ("std 0.05"); it falls from `sqrt(1/12)` at gamma = 0
//! towards 0 as gamma grows.

use crate::error::{Result, TrainError};
use tch::Tensor;

/// The relative std of gamma = 0 (a uniform average over the whole run): every std at or above
/// it would need gamma <= 0, which the update formula does not give a usable average for.
pub fn max_std() -> f64 {
    gamma_to_std(0.0)
}

/// `sigma_rel` of the power-function profile with exponent `gamma`.
pub fn gamma_to_std(gamma: f64) -> f64 {
    ((gamma + 1.0) / ((gamma + 2.0).powi(2) * (gamma + 3.0))).sqrt()
}

/// The exponent whose profile has relative std `std`: the largest real root of
/// `g^3 + 7 g^2 + (16 - s^-2) g + (12 - s^-2) = 0` (`sigma_rel(g)^2 = std^2` with the fraction
/// multiplied out). Refuses a std outside `(0, max_std())`, where gamma would not be positive.
pub fn std_to_gamma(std: f64) -> Result<f64> {
    if !(std.is_finite() && std > 0.0 && std < max_std()) {
        return Err(TrainError::Invalid(format!(
            "power-function EMA std {std}: must lie in (0, {:.6}) so that its exponent gamma is \
             positive",
            max_std()
        )));
    }
    let k = std.powi(-2);
    let f = |g: f64| ((g + 7.0) * g + (16.0 - k)) * g + (12.0 - k);
    let df = |g: f64| (3.0 * g + 14.0) * g + (16.0 - k);
    // Newton from above the largest root: the cubic is convex right of its inflection point
    // (-7/3), so the iterates fall monotonically onto the largest root. At g = k the cubic is
    // positive (k^3 dominates), so k is above every root.
    let mut g = k;
    for _ in 0..200 {
        let step = f(g) / df(g);
        g -= step;
        if step.abs() <= 1e-15 * g.abs().max(1.0) {
            break;
        }
    }
    Ok(g)
}

/// `beta_t` of the update after step `t` (1-based): 0 at the first step, so the average starts
/// at the first trained weights and the initialisation gets no weight.
pub fn beta(gamma: f64, t: u64) -> f64 {
    (1.0 - 1.0 / t as f64).powf(gamma + 1.0)
}

/// One power-function profile: the average with exponent `gamma` as it stands after step `t`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    pub t: f64,
    pub gamma: f64,
}

impl Profile {
    /// The L2 inner product of two profiles on `[0, inf)`: with `m = min(t_a, t_b)`,
    /// `(g_a + 1)(g_b + 1) m^(g_a + g_b + 1) / ((g_a + g_b + 1) t_a^(g_a + 1) t_b^(g_b + 1))`,
    /// written with the ratio `m / max` so large exponents do not overflow.
    pub fn dot(self, other: Profile) -> f64 {
        let (a, b) = (self, other);
        let num = (a.gamma + 1.0) * (b.gamma + 1.0);
        let den = (a.gamma + b.gamma + 1.0) * a.t.max(b.t);
        // The shorter profile ends inside the longer one; what remains of the longer one's
        // normalisation is (shorter / longer)^(longer's gamma).
        let ratio = if a.t <= b.t {
            (a.t / b.t).powf(b.gamma)
        } else {
            (b.t / a.t).powf(a.gamma)
        };
        num * ratio / den
    }

    /// The profile's weight density at time `x` (0 outside `[0, t]`).
    pub fn density(self, x: f64) -> f64 {
        if !(0.0..=self.t).contains(&x) {
            return 0.0;
        }
        (self.gamma + 1.0) / self.t * (x / self.t).powf(self.gamma)
    }
}

/// Coefficients that combine stored averages into a target profile, and how well they do.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    /// One per source profile, in the order given.
    pub coefficients: Vec<f64>,
    /// `|target - sum c_i source_i| / |target|` in L2 over time.
    pub relative_residual: f64,
}

/// Solves the least-squares problem `min_c |target - sum_i c_i source_i|` in L2 over time, in
/// f64: the normal equations `G c = b` with the Gram matrix `G_ij = <source_i, source_j>` and
/// `b_i = <source_i, target>`, solved by an SVD-based least squares (the Gram matrix of many
/// similar profiles is nearly singular; the SVD drops the directions below machine precision).
pub fn solve(sources: &[Profile], target: Profile) -> Result<Fit> {
    if sources.is_empty() {
        return Err(TrainError::Invalid(
            "no stored power-function EMA to reconstruct from".into(),
        ));
    }
    let n = sources.len();
    let gram: Vec<f64> = sources
        .iter()
        .flat_map(|a| sources.iter().map(move |b| a.dot(*b)))
        .collect();
    let rhs: Vec<f64> = sources.iter().map(|a| a.dot(target)).collect();
    // f64 on the CPU: `f_from_slice` of f64 values.
    let g = Tensor::f_from_slice(&gram)?.f_reshape([n as i64, n as i64])?;
    let b = Tensor::f_from_slice(&rhs)?.f_reshape([n as i64, 1])?;
    // rcond None: LAPACK's default cut-off, machine precision times the larger dimension.
    let (solution, _, _, _) = g.f_linalg_lstsq(&b, None::<f64>, "gelsd")?;
    let coefficients: Vec<f64> = Vec::<f64>::try_from(solution.f_reshape([n as i64])?)?;
    if coefficients.iter().any(|c| !c.is_finite()) {
        return Err(TrainError::Invalid(format!(
            "the least-squares solve for the profile (t = {}, gamma = {}) gave non-finite \
             coefficients",
            target.t, target.gamma
        )));
    }
    // |t - Sc|^2 = <t,t> - 2 c.b + c'Gc, every term in f64.
    let tt = target.dot(target);
    let cb: f64 = coefficients.iter().zip(&rhs).map(|(c, b)| c * b).sum();
    let cgc: f64 = (0..n)
        .map(|i| {
            (0..n)
                .map(|j| coefficients[i] * gram[i * n + j] * coefficients[j])
                .sum::<f64>()
        })
        .sum();
    let squared = (tt - 2.0 * cb + cgc).max(0.0);
    Ok(Fit {
        coefficients,
        relative_residual: (squared / tt).sqrt(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// sigma_rel decreases in gamma, so bisection on the formula itself finds gamma
    /// independently of the cubic and of Newton's method.
    fn gamma_by_bisection(std: f64) -> f64 {
        let (mut lo, mut hi) = (0.0f64, 1e7f64);
        for _ in 0..400 {
            let mid = 0.5 * (lo + hi);
            if gamma_to_std(mid) > std {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        0.5 * (lo + hi)
    }

    #[test]
    fn std_to_gamma_matches_bisection_and_the_published_values() {
        // EDM2 (Sec. 3): std 0.05 -> gamma 16.97, std 0.10 -> gamma 6.94.
        assert!((std_to_gamma(0.05).unwrap() - 16.97).abs() < 0.005);
        assert!((std_to_gamma(0.10).unwrap() - 6.94).abs() < 0.005);
        for std in [0.001, 0.01, 0.03, 0.05, 0.08, 0.1, 0.15, 0.2, 0.25, 0.28] {
            let g = std_to_gamma(std).unwrap();
            let b = gamma_by_bisection(std);
            assert!((g - b).abs() <= 1e-9 * b.max(1.0), "std {std}: {g} vs {b}");
            assert!((gamma_to_std(g) - std).abs() < 1e-12, "std {std}");
        }
    }

    #[test]
    fn std_outside_the_positive_gamma_range_is_named() {
        for bad in [0.0, -0.1, 0.29, 1.0, f64::NAN] {
            let err = std_to_gamma(bad).unwrap_err().to_string();
            assert!(err.contains("std") && err.contains("gamma"), "{err}");
        }
        assert!((max_std() - (1.0f64 / 12.0).sqrt()).abs() < 1e-15);
    }

    /// The closed-form inner product against a midpoint-rule integral of the densities.
    #[test]
    fn inner_product_matches_numerical_integration() {
        let pairs = [
            (
                Profile {
                    t: 100.0,
                    gamma: 6.94,
                },
                Profile {
                    t: 60.0,
                    gamma: 16.97,
                },
            ),
            (
                Profile {
                    t: 30.0,
                    gamma: 2.0,
                },
                Profile {
                    t: 100.0,
                    gamma: 0.5,
                },
            ),
            (
                Profile {
                    t: 50.0,
                    gamma: 3.0,
                },
                Profile {
                    t: 50.0,
                    gamma: 3.0,
                },
            ),
        ];
        for (a, b) in pairs {
            let n = 200_000;
            let end = a.t.max(b.t);
            let h = end / n as f64;
            let numeric: f64 = (0..n)
                .map(|i| {
                    let x = (i as f64 + 0.5) * h;
                    a.density(x) * b.density(x) * h
                })
                .sum();
            let closed = a.dot(b);
            assert!(
                (closed - numeric).abs() < 1e-6 * closed,
                "{a:?} {b:?}: {closed} vs {numeric}"
            );
            assert_eq!(closed, b.dot(a));
        }
    }

    /// The discrete update reproduces the unrolled weights of the continuous profile.
    #[test]
    fn the_update_rule_gives_the_binned_profile() {
        let gamma = std_to_gamma(0.1).unwrap();
        let t_end = 40u64;
        // Average of "theta_tau = e_tau" tracked by the update rule: its weights.
        let mut weights = vec![0.0f64; t_end as usize];
        for t in 1..=t_end {
            let b = beta(gamma, t);
            for w in &mut weights {
                *w *= b;
            }
            weights[t as usize - 1] += 1.0 - b;
        }
        let t = t_end as f64;
        for (i, w) in weights.iter().enumerate() {
            let tau = (i + 1) as f64;
            let binned =
                (tau.powf(gamma + 1.0) - (tau - 1.0).powf(gamma + 1.0)) / t.powf(gamma + 1.0);
            assert!((w - binned).abs() < 1e-12, "tau {tau}: {w} vs {binned}");
        }
        assert!((weights.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn a_stored_profile_is_reconstructed_by_itself() {
        let sources: Vec<Profile> = [0.05, 0.1]
            .iter()
            .flat_map(|s| {
                let gamma = std_to_gamma(*s).unwrap();
                (1..=8).map(move |k| Profile {
                    t: 25.0 * k as f64,
                    gamma,
                })
            })
            .collect();
        let target = sources[12];
        let fit = solve(&sources, target).unwrap();
        assert!(fit.relative_residual < 1e-6, "{}", fit.relative_residual);
        for (i, c) in fit.coefficients.iter().enumerate() {
            let expected = if i == 12 { 1.0 } else { 0.0 };
            assert!((c - expected).abs() < 1e-6, "coefficient {i}: {c}");
        }
    }

    #[test]
    fn an_unstored_std_is_fitted_with_a_small_residual_and_a_far_one_is_not() {
        let gammas = [std_to_gamma(0.05).unwrap(), std_to_gamma(0.1).unwrap()];
        let sources: Vec<Profile> = gammas
            .iter()
            .flat_map(|&gamma| {
                (1..=20).map(move |k| Profile {
                    t: 10.0 * k as f64,
                    gamma,
                })
            })
            .collect();
        let between = Profile {
            t: 200.0,
            gamma: std_to_gamma(0.08).unwrap(),
        };
        let fit = solve(&sources, between).unwrap();
        assert!(fit.relative_residual < 1e-2, "{}", fit.relative_residual);
        // Coefficients of a good fit sum to one (each profile has unit mass).
        let mass: f64 = fit.coefficients.iter().sum();
        assert!((mass - 1.0).abs() < 1e-2, "{mass}");
        // A target the sources cannot express (a narrow profile far before their ends' shape)
        // shows a large residual: the residual is measured, not assumed.
        let narrow = Profile {
            t: 200.0,
            gamma: std_to_gamma(0.005).unwrap(),
        };
        let bad = solve(&sources[..3], narrow).unwrap();
        assert!(bad.relative_residual > 0.3, "{}", bad.relative_residual);
    }
}
