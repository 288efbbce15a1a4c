//! Timestep distributions over a path's native time t in [0, 1] (docs/protocol.md section 2).
//!
//! Each distribution offers `sample`, `density`, `cdf` and `quantile`, so tests can check draws
//! against the analytic CDF and analysis can integrate against the density.

use crate::error::{FormulationError, Result};
use crate::path::LDM_STEPS;
use crate::special::{bisect, logit, normal_cdf, normal_pdf, normal_quantile, sigmoid};
use flowscale_core::FlowRng;
use std::f64::consts::PI;

/// Largest valid scale of the mode sampler, `2/(pi - 2)`; beyond it the map u -> t is not monotone.
pub const MODE_SCALE_MAX: f64 = 2.0 / (PI - 2.0);

/// A distribution of training timesteps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TimestepDistribution {
    /// t ~ U(0, 1).
    Uniform,
    /// Integer k uniform in 0..LDM_STEPS, t = k/(LDM_STEPS-1) (the discrete LDM training schedule).
    /// `density` treats it as its continuous limit U(0, 1).
    DiscreteUniform,
    /// `t = sigmoid(u)`, `u ~ N(mean, std^2)`.
    LogitNormal { mean: f64, std: f64 },
    /// Mode with heavy tails: `u ~ U(0,1)`, `t = 1 - u - scale (cos^2(pi u/2) - 1 + u)`.
    Mode { scale: f64 },
    /// CosMap: `u ~ U(0,1)`, `t = 1 - 1/(tan(pi u/2) + 1)`.
    CosMap,
    /// EDM log-normal noise levels `ln sigma ~ N(p_mean, p_std^2)`, expressed over the EDM native
    /// time `t = sigma/(1+sigma)` (so `t = sigmoid(ln sigma)`, a logit-normal in t).
    EdmLogNormal { p_mean: f64, p_std: f64 },
}

impl TimestepDistribution {
    /// Checks the parameters (positive stds, mode scale in [-1, 2/(pi-2)], finite values).
    pub fn validate(self) -> Result<Self> {
        let bad = |msg: String| Err(FormulationError::InvalidParameter(msg));
        match self {
            Self::LogitNormal { mean, std }
            | Self::EdmLogNormal {
                p_mean: mean,
                p_std: std,
            } if !(mean.is_finite() && std.is_finite() && std > 0.0) => bad(format!(
                "log-normal parameters need a finite mean and std > 0, got ({mean}, {std})"
            )),
            // A little slack so that the printed bound 1.75 (< 2/(pi-2) = 1.7519) is accepted.
            Self::Mode { scale }
                if !(scale.is_finite() && (-1.0..=MODE_SCALE_MAX + 1e-12).contains(&scale)) =>
            {
                bad(format!(
                    "mode scale must lie in [-1, 2/(pi-2) = {MODE_SCALE_MAX:.4}], got {scale}"
                ))
            }
            _ => Ok(self),
        }
    }

    /// The mode map u -> t (decreasing in u for valid scales).
    fn mode_map(scale: f64, u: f64) -> f64 {
        let c = (PI * u / 2.0).cos();
        1.0 - u - scale * (c * c - 1.0 + u)
    }

    /// One draw.
    pub fn sample(self, rng: &mut FlowRng) -> f64 {
        match self {
            Self::Uniform => rng.uniform(),
            Self::DiscreteUniform => rng.below(LDM_STEPS as u64) as f64 / (LDM_STEPS - 1) as f64,
            Self::LogitNormal { mean, std } => sigmoid(mean + std * rng.normal()),
            Self::EdmLogNormal { p_mean, p_std } => sigmoid(p_mean + p_std * rng.normal()),
            Self::Mode { scale } => Self::mode_map(scale, rng.uniform()),
            Self::CosMap => 1.0 - 1.0 / ((PI * rng.uniform() / 2.0).tan() + 1.0),
        }
    }

    /// Probability density at t in (0, 1).
    pub fn density(self, t: f64) -> f64 {
        match self {
            Self::Uniform | Self::DiscreteUniform => 1.0,
            Self::LogitNormal { mean, std }
            | Self::EdmLogNormal {
                p_mean: mean,
                p_std: std,
            } => normal_pdf(logit(t), mean, std) / (t * (1.0 - t)),
            Self::Mode { scale } => {
                let u = self.mode_inverse(scale, t);
                1.0 / (1.0 + scale - scale * PI / 2.0 * (PI * u).sin())
            }
            Self::CosMap => 2.0 / (PI * (1.0 - 2.0 * t + 2.0 * t * t)),
        }
    }

    fn mode_inverse(self, scale: f64, t: f64) -> f64 {
        bisect(|u| Self::mode_map(scale, u), t, 0.0, 1.0)
    }

    /// Cumulative distribution function at t.
    pub fn cdf(self, t: f64) -> f64 {
        if t <= 0.0 {
            return 0.0;
        }
        if t >= 1.0 {
            return 1.0;
        }
        match self {
            Self::Uniform => t,
            Self::DiscreteUniform => {
                let k = (t * (LDM_STEPS - 1) as f64 + 1e-9).floor();
                (k + 1.0) / LDM_STEPS as f64
            }
            Self::LogitNormal { mean, std }
            | Self::EdmLogNormal {
                p_mean: mean,
                p_std: std,
            } => normal_cdf((logit(t) - mean) / std),
            // t = f(u) with f decreasing, so P(T <= t) = P(U >= f^-1(t)).
            Self::Mode { scale } => 1.0 - self.mode_inverse(scale, t),
            Self::CosMap => 2.0 / PI * (t / (1.0 - t)).atan(),
        }
    }

    /// Inverse CDF at probability p in (0, 1).
    pub fn quantile(self, p: f64) -> f64 {
        match self {
            Self::Uniform => p,
            Self::DiscreteUniform => {
                let k = ((p * LDM_STEPS as f64).floor()).min((LDM_STEPS - 1) as f64);
                k / (LDM_STEPS - 1) as f64
            }
            Self::LogitNormal { mean, std }
            | Self::EdmLogNormal {
                p_mean: mean,
                p_std: std,
            } => sigmoid(mean + std * normal_quantile(p)),
            Self::Mode { scale } => Self::mode_map(scale, 1.0 - p),
            Self::CosMap => 1.0 - 1.0 / ((PI * p / 2.0).tan() + 1.0),
        }
    }
}
