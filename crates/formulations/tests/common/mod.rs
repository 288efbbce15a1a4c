//! Shared test helpers: the analytic optimal network for Gaussian data and quadrature.
#![allow(dead_code)]

use flowscale_formulations::{Formulation, NoiseLevel, TIME_INPUT_SCALE};
use tch::{Kind, Tensor};

/// Data x0 ~ N(mu, diag s^2): the ideal network of `formulation`, as a closure of
/// (network input, time input) only, like a real backbone.
///
/// Per dimension, with z = a x0 + b eps: E[x0|z] = mu + a s^2 (z - a mu)/(a^2 s^2 + b^2) and
/// E[eps|z] = b (z - a mu)/(a^2 s^2 + b^2); the optimum of an MSE on `A x0 + B eps` is
/// `A E[x0|z] + B E[eps|z]`.
pub fn optimal_network(
    formulation: Formulation,
    mu: Vec<f64>,
    s: Vec<f64>,
) -> impl Fn(&Tensor, &Tensor) -> Tensor {
    move |net_in: &Tensor, t_in: &Tensor| {
        let param = formulation.parameterisation();
        let size = net_in.size();
        let dims = mu.len();
        assert_eq!(size[1] as usize, dims);
        let x = Vec::<f64>::try_from(net_in.to_kind(Kind::Double).flatten(0, -1)).unwrap();
        let ts = Vec::<f64>::try_from(t_in.to_kind(Kind::Double)).unwrap();
        let mut out = vec![0.0; x.len()];
        // A sampler gives every sample the same time: one level per distinct time (the LDM
        // schedule's t_eq -> t is a bisection).
        let mut cached: Option<(f64, NoiseLevel)> = None;
        for (i, &t) in ts.iter().enumerate() {
            let level = match cached {
                Some((ct, level)) if ct == t => level,
                _ => {
                    let level = formulation.level_at_t_eq(t / TIME_INPUT_SCALE);
                    cached = Some((t, level));
                    level
                }
            };
            let (ca, cb) = param.target_coefficients(&level);
            let c_in = param.input_scale(&level);
            let (a, b) = (level.a, level.b);
            for d in 0..dims {
                let z = x[i * dims + d] / c_in;
                let den = a * a * s[d] * s[d] + b * b;
                let r = z - a * mu[d];
                let x0 = mu[d] + a * s[d] * s[d] * r / den;
                let eps = b * r / den;
                out[i * dims + d] = ca * x0 + cb * eps;
            }
        }
        Tensor::from_slice(&out)
            .view(size.as_slice())
            .to_kind(net_in.kind())
    }
}

/// Per-column sample mean and standard deviation of `x` [n, d].
pub fn column_mean_std(x: &Tensor) -> (Vec<f64>, Vec<f64>) {
    (
        Vec::<f64>::try_from(x.mean_dim(0, false, Kind::Double)).unwrap(),
        Vec::<f64>::try_from(x.std_dim(0, true, false)).unwrap(),
    )
}

/// Irreducible per-sample loss at a level: weight · mean_d s_d^2 det^2 / (a^2 s_d^2 + b^2).
pub fn minimum_loss_at(formulation: Formulation, level: &NoiseLevel, s: &[f64]) -> f64 {
    let param = formulation.parameterisation();
    let det = param.determinant(level);
    let w = formulation.loss_weight().per_sample(level);
    let (a, b) = (level.a, level.b);
    w * s
        .iter()
        .map(|sd| sd * sd * det * det / (a * a * sd * sd + b * b))
        .sum::<f64>()
        / s.len() as f64
}

/// E_t[minimum_loss_at] by midpoint quadrature in probability space (t = quantile(u)).
pub fn analytic_minimum(formulation: Formulation, s: &[f64], points: usize) -> f64 {
    let dist = formulation.timesteps();
    (0..points)
        .map(|j| {
            let t = dist.quantile((j as f64 + 0.5) / points as f64);
            minimum_loss_at(formulation, &formulation.level(t), s)
        })
        .sum::<f64>()
        / points as f64
}

/// Kolmogorov-Smirnov statistic of draws against a CDF.
pub fn ks_statistic(mut draws: Vec<f64>, cdf: impl Fn(f64) -> f64) -> f64 {
    draws.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = draws.len() as f64;
    draws
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let f = cdf(x);
            (f - i as f64 / n).abs().max(((i + 1) as f64 / n - f).abs())
        })
        .fold(0.0, f64::max)
}

/// Critical KS value at significance 0.001 (asymptotic: 1.949/sqrt(n)).
pub fn ks_critical(n: usize) -> f64 {
    1.949 / (n as f64).sqrt()
}
