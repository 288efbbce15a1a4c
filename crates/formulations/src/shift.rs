//! Resolution-dependent timestep shift (SD3 Eq. 23): `t_m = alpha t_n / (1 + (alpha - 1) t_n)`.
//!
//! The shift is defined on RF time. Since `t_m/(1-t_m) = alpha t_n/(1-t_n)` it lowers the log-SNR by
//! exactly `2 ln alpha`; for the other families we therefore apply it to the equal-SNR RF time
//! `t_eq`, which shifts every family's log-SNR by the same amount.

use crate::error::{FormulationError, Result};

/// A timestep shift with factor alpha (> 0); alpha = 1 is the identity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shift {
    alpha: f64,
}

impl Shift {
    /// A shift with factor `alpha`; must be finite and positive.
    pub fn new(alpha: f64) -> Result<Self> {
        if !(alpha.is_finite() && alpha > 0.0) {
            return Err(FormulationError::InvalidParameter(format!(
                "shift alpha must be finite and > 0, got {alpha}"
            )));
        }
        Ok(Self { alpha })
    }

    /// The shift for a resolution of `m` pixels relative to a base of `n` pixels: alpha = sqrt(m/n).
    pub fn for_resolution(m_pixels: f64, n_pixels: f64) -> Result<Self> {
        Self::new((m_pixels / n_pixels).sqrt())
    }

    /// The factor alpha.
    pub fn alpha(self) -> f64 {
        self.alpha
    }

    /// Shifted time.
    pub fn apply(self, t: f64) -> f64 {
        self.alpha * t / (1.0 + (self.alpha - 1.0) * t)
    }

    /// Inverse of [`Shift::apply`].
    pub fn invert(self, t_m: f64) -> f64 {
        t_m / (self.alpha - (self.alpha - 1.0) * t_m)
    }

    /// `d t_m / d t_n` at unshifted time `t_n`, for transforming densities.
    pub fn derivative(self, t_n: f64) -> f64 {
        let d = 1.0 + (self.alpha - 1.0) * t_n;
        self.alpha / (d * d)
    }
}
