//! Timestep samplers: KS tests of 100k draws against analytic CDFs, densities, the shift.

mod common;

use common::{ks_critical, ks_statistic};
use flowscale_formulations::special::{logit, normal_cdf};
use flowscale_formulations::timesteps::MODE_SCALE_MAX;
use flowscale_formulations::{FlowRng, Formulation, Shift, TimestepDistribution as T};
use std::f64::consts::PI;

const N: usize = 100_000;

fn draws(dist: T, seed: u64) -> Vec<f64> {
    let mut rng = FlowRng::new(seed);
    (0..N).map(|_| dist.sample(&mut rng)).collect()
}

fn assert_ks(name: &str, draws: Vec<f64>, cdf: impl Fn(f64) -> f64) {
    let d = ks_statistic(draws, cdf);
    assert!(
        d < ks_critical(N),
        "{name}: KS statistic {d:.5} >= {:.5}",
        ks_critical(N)
    );
}

#[test]
fn logit_normal_passes_ks() {
    for (m, s) in [(0.0, 1.0), (1.0, 0.6), (-0.5, 2.2)] {
        // Reference CDF written from the definition t = sigmoid(N(m, s^2)).
        assert_ks(
            "lognorm",
            draws(T::LogitNormal { mean: m, std: s }, 1),
            |t| normal_cdf(((t / (1.0 - t)).ln() - m) / s),
        );
    }
}

#[test]
fn mode_passes_ks_against_inverse_of_the_map() {
    for s in [-1.0, -0.54, 0.0, 1.29, 1.75] {
        let f = |u: f64| 1.0 - u - s * ((PI * u / 2.0).cos().powi(2) - 1.0 + u);
        // P(T <= t) = 1 - f^-1(t); invert by a fine table + linear interpolation (independent of the crate).
        let grid: Vec<(f64, f64)> = (0..=20_000)
            .map(|i| {
                let u = i as f64 / 20_000.0;
                (f(u), u)
            })
            .collect();
        let cdf = |t: f64| {
            let i = grid
                .partition_point(|&(ft, _)| ft > t)
                .clamp(1, grid.len() - 1);
            let ((t0, u0), (t1, u1)) = (grid[i - 1], grid[i]);
            let u = if t0 == t1 {
                u0
            } else {
                u0 + (t - t0) * (u1 - u0) / (t1 - t0)
            };
            1.0 - u
        };
        assert_ks(&format!("mode({s})"), draws(T::Mode { scale: s }, 2), cdf);
    }
}

#[test]
fn cosmap_and_uniform_pass_ks() {
    assert_ks("cosmap", draws(T::CosMap, 3), |t| {
        2.0 / PI * (t / (1.0 - t)).atan()
    });
    assert_ks("uniform", draws(T::Uniform, 4), |t| t);
}

#[test]
fn edm_log_normal_passes_ks_in_log_sigma() {
    for (pm, ps) in [(-1.2, 0.6), (0.0, 1.2), (1.2, 1.8)] {
        let ln_sigma: Vec<f64> = draws(
            T::EdmLogNormal {
                p_mean: pm,
                p_std: ps,
            },
            5,
        )
        .into_iter()
        .map(|t| {
            // EDM native time t = sigma/(1+sigma) -> sigma = t/(1-t).
            let sigma = Formulation::Edm {
                p_mean: pm,
                p_std: ps,
            }
            .level(t)
            .b;
            sigma.ln()
        })
        .collect();
        assert_ks("edm", ln_sigma, |x| normal_cdf((x - pm) / ps));
    }
}

#[test]
fn a_wrong_sampler_fails_ks() {
    // The KS check has power: logit-normal(0, 1) draws are not logit-normal(0.05, 1).
    let d = ks_statistic(
        draws(
            T::LogitNormal {
                mean: 0.0,
                std: 1.0,
            },
            6,
        ),
        |t| normal_cdf((logit(t) - 0.05) / 1.0),
    );
    assert!(d > ks_critical(N), "{d}");
}

#[test]
fn cdf_and_quantile_are_consistent_with_density() {
    let dists = [
        T::Uniform,
        T::LogitNormal {
            mean: 0.5,
            std: 0.6,
        },
        T::Mode { scale: 1.29 },
        T::Mode { scale: -1.0 },
        T::CosMap,
        T::EdmLogNormal {
            p_mean: -0.6,
            p_std: 1.2,
        },
    ];
    for d in dists {
        for p in [0.01, 0.2, 0.5, 0.77, 0.99] {
            let t = d.quantile(p);
            assert!((d.cdf(t) - p).abs() < 1e-6, "{d:?} cdf(quantile({p}))");
            // h large enough that the 1e-7 accuracy of erfc does not dominate the difference quotient.
            let h = 2e-3 * t.min(1.0 - t);
            let num = (d.cdf(t + h) - d.cdf(t - h)) / (2.0 * h);
            assert!(
                (num - d.density(t)).abs() < 2e-3 * d.density(t).max(1.0),
                "{d:?} density at {t}"
            );
        }
    }
}

#[test]
fn densities_integrate_to_one() {
    // Midpoint rule; 1e6 points resolve the sharp peak of mode(1.75) at t = 0.5.
    let m = 1_000_000;
    for d in [
        T::Mode { scale: -1.0 },
        T::Mode { scale: 0.83 },
        T::Mode { scale: 1.75 },
        T::CosMap,
        T::LogitNormal {
            mean: 1.0,
            std: 0.6,
        },
    ] {
        let integral: f64 = (0..m)
            .map(|i| d.density((i as f64 + 0.5) / m as f64))
            .sum::<f64>()
            / m as f64;
        assert!((integral - 1.0).abs() < 2e-3, "{d:?}: integral {integral}");
    }
}

#[test]
fn mode_is_symmetric_and_validated() {
    let d = T::Mode { scale: 1.29 };
    for t in [0.1, 0.3, 0.45] {
        assert!((d.density(t) - d.density(1.0 - t)).abs() < 1e-8);
    }
    assert!(T::Mode {
        scale: MODE_SCALE_MAX + 0.01
    }
    .validate()
    .is_err());
    assert!(T::Mode { scale: -1.01 }.validate().is_err());
    assert!(T::Mode { scale: 1.75 }.validate().is_ok());
}

#[test]
fn shift_matches_the_reference_values() {
    let s = Shift::new(3.0).unwrap();
    for (t, expected) in [(0.1, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 0.9)] {
        assert!((s.apply(t) - expected).abs() < 1e-12, "shift({t})");
        assert!((s.invert(expected) - t).abs() < 1e-12);
    }
    assert!(Shift::new(0.0).is_err() && Shift::new(f64::NAN).is_err());
    assert!(
        (Shift::for_resolution(1024.0 * 1024.0, 256.0 * 256.0)
            .unwrap()
            .alpha()
            - 4.0)
            .abs()
            < 1e-12
    );
}

#[test]
fn shifted_training_times_follow_the_shifted_distribution() {
    // rf with shift 3: P(T_shifted <= shift(x)) = P(T <= x).
    let f = Formulation::Rf;
    let s = Shift::new(3.0).unwrap();
    let mut rng = FlowRng::new(9);
    let t = f.sample_times(N, &mut rng, Some(s));
    assert_ks("shifted rf", t, |x| s.invert(x));
    // The shift lowers every family's log-SNR by 2 ln 3.
    for f in [
        Formulation::EpsCos,
        Formulation::Edm {
            p_mean: 0.0,
            p_std: 1.0,
        },
        Formulation::VLinear,
    ] {
        let t = 0.4;
        let shifted = f.shifted_time(t, Some(s));
        let dl = f.level(t).lambda - f.level(shifted).lambda;
        assert!((dl - 2.0 * 3f64.ln()).abs() < 1e-6, "{f}: {dl}");
    }
}
