//! EDM preconditioning (Karras et al. 2022) as a wrapper around any backbone.
//!
//! `D(x; sigma) = c_skip x + c_out F(c_in x; t_in)` with `c_skip = sd^2/(sigma^2+sd^2)`,
//! `c_out = sigma sd/sqrt(sigma^2+sd^2)`, `c_in = 1/sqrt(sigma^2+sd^2)`. EDM's noise input is
//! `c_noise = ln(sigma)/4`; the wrapper instead feeds the crate-wide time input `1000 · t_eq` with
//! `t_eq = sigma/(1+sigma)` (a monotone function of c_noise, see [`crate::Formulation::time_input`]),
//! so that the same backbone works for every family. [`EdmPreconditioning::c_noise`] is provided
//! for backbones that want EDM's original input.

use crate::error::{FormulationError, Result};
use crate::formulation::TIME_INPUT_SCALE;
use crate::parameterisation::EDM_SIGMA_DATA;
use crate::training::per_sample;
use tch::Tensor;

/// EDM's smallest sigma (Karras et al. 2022, Table 1): the last non-zero level of its sampler and
/// the lowest level at which its training loss is finite enough to validate.
pub const EDM_SIGMA_MIN: f64 = 0.002;
/// EDM's largest sigma: its sampler starts from `x = sigma_max · eps`, where the data (std 0.5)
/// is 0.6% of the latent's std.
pub const EDM_SIGMA_MAX: f64 = 80.0;
/// EDM's schedule exponent: sigmas are uniform in `sigma^(1/rho)`.
pub const EDM_RHO: f64 = 7.0;

/// EDM preconditioning with data std `sigma_data`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EdmPreconditioning {
    pub sigma_data: f64,
}

impl Default for EdmPreconditioning {
    fn default() -> Self {
        Self {
            sigma_data: EDM_SIGMA_DATA,
        }
    }
}

impl EdmPreconditioning {
    /// Skip scale.
    pub fn c_skip(&self, sigma: f64) -> f64 {
        let sd2 = self.sigma_data * self.sigma_data;
        sd2 / (sigma * sigma + sd2)
    }
    /// Output scale.
    pub fn c_out(&self, sigma: f64) -> f64 {
        sigma * self.sigma_data / (sigma * sigma + self.sigma_data * self.sigma_data).sqrt()
    }
    /// Input scale.
    pub fn c_in(&self, sigma: f64) -> f64 {
        1.0 / (sigma * sigma + self.sigma_data * self.sigma_data).sqrt()
    }
    /// EDM's noise conditioning `ln(sigma)/4`.
    pub fn c_noise(&self, sigma: f64) -> f64 {
        sigma.ln() / 4.0
    }
    /// EDM's loss weight `(sigma^2+sd^2)/(sigma sd)^2` on `||D - x0||^2`.
    pub fn loss_weight(&self, sigma: f64) -> f64 {
        (sigma * sigma + self.sigma_data * self.sigma_data) / (sigma * self.sigma_data).powi(2)
    }

    /// The denoiser `D(x; sigma)` for `x = x0 + sigma eps` of shape [B, ...], one sigma per sample.
    pub fn denoise<F>(&self, backbone: F, x: &Tensor, sigmas: &[f64]) -> Result<Tensor>
    where
        F: Fn(&Tensor, &Tensor) -> Tensor,
    {
        if x.dim() == 0 || x.size()[0] != sigmas.len() as i64 {
            return Err(FormulationError::InvalidTensor(format!(
                "x {:?} needs one sigma per sample, got {}",
                x.size(),
                sigmas.len()
            )));
        }
        if let Some(bad) = sigmas.iter().find(|s| !(s.is_finite() && **s >= 0.0)) {
            return Err(FormulationError::InvalidParameter(format!(
                "sigma must be finite and >= 0, got {bad}"
            )));
        }
        let col = |f: &dyn Fn(f64) -> f64| {
            per_sample(&sigmas.iter().map(|&s| f(s)).collect::<Vec<_>>(), x)
        };
        let t_in: Vec<f64> = sigmas
            .iter()
            .map(|&s| TIME_INPUT_SCALE * s / (1.0 + s))
            .collect();
        let t_in = Tensor::f_from_slice(&t_in)?
            .f_to_kind(x.kind())?
            .f_to_device(x.device())?;
        let f = backbone(&x.f_mul(&col(&|s| self.c_in(s))?)?, &t_in);
        Ok(x.f_mul(&col(&|s| self.c_skip(s))?)?
            .f_add(&f.f_mul(&col(&|s| self.c_out(s))?)?)?)
    }
}
