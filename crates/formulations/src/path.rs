//! Forward paths `z_t = a_t x0 + b_t eps` (docs/protocol.md section 1).
//!
//! Each path is a function of its own *native* time `t` in [0, 1]. Every path is also described by
//! its log-SNR `lambda = log(a^2/b^2)` and by the equal-SNR RF time `t_eq = b/(a+b) = sigmoid(-lambda/2)`,
//! the common coordinate used for time conditioning, shifting and sampling across families.

use crate::special::{bisect, sigmoid};
use std::f64::consts::PI;
use std::sync::OnceLock;

/// Number of discrete steps of the LDM schedule.
pub const LDM_STEPS: usize = 1000;
const LDM_BETA_START: f64 = 0.00085;
const LDM_BETA_END: f64 = 0.012;

/// A forward path (a_t, b_t) over native time t in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Path {
    /// Rectified flow: `a = 1 - t`, `b = t`.
    Linear,
    /// Cosine variance-preserving: `a = cos(pi t/2)`, `b = sin(pi t/2)`.
    Cosine,
    /// The discrete LDM "scaled linear" variance-preserving schedule (T = 1000). Native time is
    /// `t = k/999`; between integers the log-SNR is interpolated linearly in t (our continuous
    /// extension for ODE sampling and shifting, see [`ldm_lambdas`]), `a = sqrt(sigmoid(lambda))`,
    /// `b = sqrt(sigmoid(-lambda))`. It never reaches pure noise: `a(1) ≈ 0.068`.
    LdmLinear,
    /// EDM variance-exploding `z = x0 + sigma eps`: `a = 1`, `b = sigma`. Its native time is the
    /// equal-SNR RF time, `sigma = t/(1-t)`, so the EDM timestep distributions (log-normal sigma,
    /// edm/rf, edm/cos) become distributions over t (logit-normal, uniform, CosMap).
    VarianceExploding,
}

/// Coefficients of a path at one native time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoiseLevel {
    /// Native time of the path.
    pub t: f64,
    /// Data coefficient `a_t`.
    pub a: f64,
    /// Noise coefficient `b_t`.
    pub b: f64,
    /// Log-SNR `log(a^2/b^2)`.
    pub lambda: f64,
    /// Equal-SNR RF time `b/(a+b)`.
    pub t_eq: f64,
}

/// Log-SNR of the 1000 discrete LDM steps, `lambda_k = log(abar_k / (1 - abar_k))`.
pub fn ldm_lambdas() -> &'static [f64] {
    static TABLE: OnceLock<Vec<f64>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let (s0, s1) = (LDM_BETA_START.sqrt(), LDM_BETA_END.sqrt());
        let mut abar = 1.0;
        (0..LDM_STEPS)
            .map(|k| {
                let beta = (s0 + k as f64 / (LDM_STEPS - 1) as f64 * (s1 - s0)).powi(2);
                abar *= 1.0 - beta;
                (abar / (1.0 - abar)).ln()
            })
            .collect()
    })
}

/// Position of native LDM time t on the table: segment index and fraction.
fn ldm_segment(t: f64) -> (usize, f64) {
    let x = t.clamp(0.0, 1.0) * (LDM_STEPS - 1) as f64;
    let k = (x.floor() as usize).min(LDM_STEPS - 2);
    (k, x - k as f64)
}

impl Path {
    /// Log-SNR at native time t.
    pub fn lambda(self, t: f64) -> f64 {
        match self {
            Path::Linear | Path::VarianceExploding => 2.0 * ((1.0 - t) / t).ln(),
            Path::Cosine => {
                let x = PI * t / 2.0;
                2.0 * (x.cos() / x.sin()).ln()
            }
            Path::LdmLinear => {
                let l = ldm_lambdas();
                let (k, f) = ldm_segment(t);
                l[k] + f * (l[k + 1] - l[k])
            }
        }
    }

    /// Derivative of the log-SNR with respect to native time (negative).
    pub fn dlambda_dt(self, t: f64) -> f64 {
        match self {
            Path::Linear | Path::VarianceExploding => -2.0 / (t * (1.0 - t)),
            Path::Cosine => -2.0 * PI / (PI * t).sin(),
            Path::LdmLinear => {
                let l = ldm_lambdas();
                let (k, _) = ldm_segment(t);
                (l[k + 1] - l[k]) * (LDM_STEPS - 1) as f64
            }
        }
    }

    /// (a_t, b_t) at native time t.
    pub fn coefficients(self, t: f64) -> (f64, f64) {
        match self {
            Path::Linear => (1.0 - t, t),
            Path::Cosine => ((PI * t / 2.0).cos(), (PI * t / 2.0).sin()),
            Path::LdmLinear => {
                let lambda = self.lambda(t);
                (sigmoid(lambda).sqrt(), sigmoid(-lambda).sqrt())
            }
            Path::VarianceExploding => (1.0, t / (1.0 - t)),
        }
    }

    /// `(da/dt, db/dt)` at native time t: the coefficients of the probability-flow ODE
    /// `dz/dt = a'(t) x0 + b'(t) eps` (docs/protocol.md section 7).
    ///
    /// The LDM schedule uses the variance-preserving identities `a' = a b^2 lambda'/2`,
    /// `b' = -b a^2 lambda'/2` (from `a^2 = sigmoid(lambda)`) with the slope of its piecewise-linear
    /// log-SNR; at a knot that is the slope of the segment above it (see [`Path::dlambda_dt`]).
    pub fn coefficient_rates(self, t: f64) -> (f64, f64) {
        match self {
            Path::Linear => (-1.0, 1.0),
            Path::Cosine => {
                let x = PI * t / 2.0;
                (-PI / 2.0 * x.sin(), PI / 2.0 * x.cos())
            }
            Path::LdmLinear => {
                let (a, b) = self.coefficients(t);
                let dl = self.dlambda_dt(t);
                (a * b * b * dl / 2.0, -b * a * a * dl / 2.0)
            }
            Path::VarianceExploding => (0.0, 1.0 / ((1.0 - t) * (1.0 - t))),
        }
    }

    /// Everything about native time t.
    pub fn level(self, t: f64) -> NoiseLevel {
        let (a, b) = self.coefficients(t);
        let lambda = self.lambda(t);
        let t_eq = match self {
            Path::Linear | Path::VarianceExploding => t,
            _ => sigmoid(-lambda / 2.0),
        };
        NoiseLevel {
            t,
            a,
            b,
            lambda,
            t_eq,
        }
    }

    /// Native time with log-SNR `lambda` (clamped to the path's range for the LDM schedule).
    pub fn t_from_lambda(self, lambda: f64) -> f64 {
        match self {
            Path::Linear | Path::VarianceExploding => sigmoid(-lambda / 2.0),
            Path::Cosine => 2.0 / PI * (-lambda / 2.0).exp().atan(),
            Path::LdmLinear => {
                let l = ldm_lambdas();
                if lambda >= l[0] {
                    0.0
                } else if lambda <= l[LDM_STEPS - 1] {
                    1.0
                } else {
                    bisect(|t| self.lambda(t), lambda, 0.0, 1.0)
                }
            }
        }
    }

    /// Native time with equal-SNR RF time `t_eq`.
    pub fn t_from_t_eq(self, t_eq: f64) -> f64 {
        match self {
            Path::Linear | Path::VarianceExploding => t_eq,
            Path::Cosine => 2.0 / PI * (t_eq / (1.0 - t_eq)).atan(),
            Path::LdmLinear => {
                if t_eq <= 0.0 {
                    0.0
                } else if t_eq >= 1.0 {
                    1.0
                } else {
                    self.t_from_lambda(2.0 * ((1.0 - t_eq) / t_eq).ln())
                }
            }
        }
    }
}
