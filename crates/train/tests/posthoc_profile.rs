//! The post-hoc EMA maths against values computed independently with numpy
//! (`scripts/fixtures/posthoc_ema_reference.py`, versions in the fixture's versions.json): gamma
//! from std by the cubic's companion-matrix roots, and least-squares coefficients from
//! inner products integrated by Gauss-Legendre quadrature instead of the closed form; plus the
//! per-step weights the coefficients give under the update rule.

use flowscale_train::posthoc::profile::{beta, solve, std_to_gamma, Profile};
use serde_json::Value;

fn expected() -> Value {
    let text = include_str!("fixtures/posthoc_ema/expected.json");
    serde_json::from_str(text).unwrap()
}

/// Per-step weights of the EMA (exponent `gamma`) after step `t`, over steps 1..=len, from the
/// update rule.
fn step_weights(gamma: f64, t: u64, len: usize) -> Vec<f64> {
    let mut w = vec![0.0; len];
    for s in 1..=t {
        let b = beta(gamma, s);
        w.iter_mut().for_each(|x| *x *= b);
        w[s as usize - 1] += 1.0 - b;
    }
    w
}

#[test]
fn gamma_matches_numpy_roots_of_the_cubic() {
    for case in expected()["gamma"].as_array().unwrap() {
        let std = case["std"].as_f64().unwrap();
        let want = case["gamma"].as_f64().unwrap();
        let got = std_to_gamma(std).unwrap();
        assert!(
            (got - want).abs() <= 1e-10 * want,
            "std {std}: {got} vs {want}"
        );
    }
}

#[test]
fn coefficients_match_the_quadrature_fit() {
    for case in expected()["fits"].as_array().unwrap() {
        let sources: Vec<Profile> = case["sources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| Profile {
                t: s["step"].as_f64().unwrap(),
                gamma: std_to_gamma(s["std"].as_f64().unwrap()).unwrap(),
            })
            .collect();
        let step = case["target_step"].as_u64().unwrap();
        let gamma = std_to_gamma(case["target_std"].as_f64().unwrap()).unwrap();
        let fit = solve(
            &sources,
            Profile {
                t: step as f64,
                gamma,
            },
        )
        .unwrap();
        let want: Vec<f64> = case["coefficients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_f64().unwrap())
            .collect();
        let worst = fit
            .coefficients
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(
            worst < 1e-6,
            "{} sources: coefficients differ by {worst:e}",
            sources.len()
        );
        let residual = case["relative_residual"].as_f64().unwrap();
        assert!(
            (fit.relative_residual - residual).abs() < 1e-6 * residual.max(1e-3),
            "{} vs {residual}",
            fit.relative_residual
        );
        // What the coefficients do to the weights of each step.
        let len = step as usize;
        let mut combined = vec![0.0; len];
        for (p, c) in sources.iter().zip(&fit.coefficients) {
            for (x, w) in combined
                .iter_mut()
                .zip(step_weights(p.gamma, p.t as u64, len))
            {
                *x += c * w;
            }
        }
        let target = step_weights(gamma, step, len);
        let l1: f64 = combined
            .iter()
            .zip(&target)
            .map(|(a, b)| (a - b).abs())
            .sum();
        let want_l1 = case["step_weights_l1"].as_f64().unwrap();
        assert!((l1 - want_l1).abs() < 1e-6 * want_l1, "{l1} vs {want_l1}");
    }
}
