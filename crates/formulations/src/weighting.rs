//! Per-sample loss weights and the effective weight `w(lambda)` of the unified loss.
//!
//! Any recipe "t ~ p(t), per-sample loss c(t) ||eps_hat - eps||^2" equals the unified
//! `L_w = -1/2 E_{t~U} [w_t lambda'_t ||eps_hat - eps||^2]` with `w_t = -2 p(t) c(t) / lambda'_t`
//! (docs/protocol.md section 1).

use crate::parameterisation::Parameterisation;
use crate::path::NoiseLevel;

/// The per-sample weight applied to the squared error of the raw network output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LossWeight {
    /// Weight 1 (rf, eps, v families: the timestep density carries all the weighting).
    Unit,
    /// EDM's `lambda(sigma) = (sigma^2+sd^2)/(sigma sd)^2` on `||D - x0||^2`. Since
    /// `D - x0 = c_out (F - F_target)`, in raw-output space the weight is `lambda(sigma) c_out^2`,
    /// which is identically 1; we compute it rather than hard-code it so the identity is tested.
    EdmLambda { sigma_data: f64 },
}

impl LossWeight {
    /// Weight of `||out - target||^2` for one sample at this level.
    pub fn per_sample(self, level: &NoiseLevel) -> f64 {
        match self {
            Self::Unit => 1.0,
            Self::EdmLambda { sigma_data: sd } => {
                let sigma = level.b / level.a;
                let lambda = (sigma * sigma + sd * sd) / (sigma * sd).powi(2);
                let c_out = sigma * sd / (sigma * sigma + sd * sd).sqrt();
                lambda * c_out * c_out
            }
        }
    }
}

/// The eps-space per-sample weight `c(t)` of a parameterisation and loss weight at one level.
pub fn eps_space_weight(param: Parameterisation, weight: LossWeight, level: &NoiseLevel) -> f64 {
    weight.per_sample(level) * param.eps_error_factor(level)
}

/// Effective weight of the unified loss, `w = -2 p(t) c(t) / lambda'(t)`.
pub fn effective_weight(density: f64, eps_weight: f64, dlambda_dt: f64) -> f64 {
    -2.0 * density * eps_weight / dlambda_dt
}
