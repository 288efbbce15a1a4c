//! What the network predicts, and the conversions between predictions (docs/protocol.md section 1).
//!
//! Every training target is linear in (x0, eps): `target = A x0 + B eps` with per-level scalars
//! (A, B). Together with `z = a x0 + b eps` this makes every conversion a 2x2 solve with
//! determinant `det = A b - B a`, and the irreducible loss of a Gaussian toy problem closed-form.
//! The network sees `c_in · z` (c_in = 1 except under EDM preconditioning).

use crate::path::NoiseLevel;

/// EDM's data standard deviation sigma_data (SD3 uses EDM's default 0.5).
pub const EDM_SIGMA_DATA: f64 = 0.5;

/// The network's parameterisation / prediction target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Parameterisation {
    /// RF velocity `v = eps - x0`.
    RfVelocity,
    /// Noise `eps`.
    Epsilon,
    /// Variance-preserving velocity `v = a eps - b x0`.
    VpVelocity,
    /// EDM preconditioning: the raw network F is trained towards
    /// `F_target = (x0 - c_skip x)/c_out` where `x = z/a`, `sigma = b/a`, so that
    /// `D = c_skip x + c_out F` is an x0 prediction (see [`crate::edm`]).
    EdmPreconditioned { sigma_data: f64 },
}

impl Parameterisation {
    /// (A, B) with `target = A x0 + B eps` at this level.
    ///
    /// For EDM, `A = sigma/(sd sqrt(sigma^2+sd^2))`, `B = -sd/sqrt(sigma^2+sd^2)`; written here in
    /// (a, b) so that they stay accurate near sigma = 0 (no cancellation in `x0 - c_skip x`).
    pub fn target_coefficients(self, level: &NoiseLevel) -> (f64, f64) {
        let (a, b) = (level.a, level.b);
        match self {
            Self::RfVelocity => (-1.0, 1.0),
            Self::Epsilon => (0.0, 1.0),
            Self::VpVelocity => (-b, a),
            Self::EdmPreconditioned { sigma_data: sd } => {
                let r = (b * b + sd * sd * a * a).sqrt();
                (b / (sd * r), -sd * a / r)
            }
        }
    }

    /// Scale applied to z before it enters the network.
    pub fn input_scale(self, level: &NoiseLevel) -> f64 {
        match self {
            Self::EdmPreconditioned { sigma_data: sd } => {
                1.0 / (level.b * level.b + sd * sd * level.a * level.a).sqrt()
            }
            _ => 1.0,
        }
    }

    /// `det = A b - B a`: the conversion output -> (x0, eps) is singular where it is zero
    /// (eps-prediction at a = 0).
    pub fn determinant(self, level: &NoiseLevel) -> f64 {
        let (ca, cb) = self.target_coefficients(level);
        ca * level.b - cb * level.a
    }

    /// Squared ratio of the target error to the eps error, `(det/a)^2`: a per-sample loss
    /// `c ||target_hat - target||^2` is `c (det/a)^2 ||eps_hat - eps||^2`.
    pub fn eps_error_factor(self, level: &NoiseLevel) -> f64 {
        let r = self.determinant(level) / level.a;
        r * r
    }

    /// Scalars (p, q, r, s) with `x0_hat = p out + q z`, `eps_hat = r z + s out` for native z.
    pub fn conversion(self, level: &NoiseLevel) -> ConversionCoefficients {
        let (ca, cb) = self.target_coefficients(level);
        let det = ca * level.b - cb * level.a;
        ConversionCoefficients {
            x0_from_out: level.b / det,
            x0_from_z: -cb / det,
            eps_from_z: ca / det,
            eps_from_out: -level.a / det,
        }
    }
}

/// Linear maps from (network output, native z) to predictions; see [`Parameterisation::conversion`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConversionCoefficients {
    pub x0_from_out: f64,
    pub x0_from_z: f64,
    pub eps_from_z: f64,
    pub eps_from_out: f64,
}
