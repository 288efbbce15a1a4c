//! The native sampler frame: Euler (or Heun) on each formulation's own probability-flow ODE
//! `dz/dtau = a'(tau) x0_hat + b'(tau) eps_hat` for its native latent `z = a x0 + b eps`, in its
//! native ODE time tau, on its native schedule ([`crate::native_schedule()`]); docs/protocol.md
//! section 7.
//!
//! The ODE time tau is the path's native time t, except on the variance-exploding path, where it
//! is sigma (EDM's own time: Karras et al. integrate `dx/dsigma = (x - D(x; sigma))/sigma`).
//! Euler in the EDM path's t = sigma/(1+sigma) steps with `db/dt = 1/(1-t)^2`, 6561 at EDM's
//! sigma_max = 80: the first of 5 steps on EDM's schedule (sigma 80 -> 24.4) would move sigma by
//! -177 instead of -55.6 and flip the latent's sign. On the linear path (rf) and in sigma (EDM) a and b are affine in
//! tau, so an Euler step there is a DDIM step, as it is in the RF frame; on the variance-preserving
//! paths (cosine, LDM) Euler in t is a different integrator.
//!
//! Start: the standard-normal `noise` is the latent at the first time, scaled by sigma on the
//! variance-exploding path (EDM's `x = sigma_max · eps`) and as is on the others (`b(1) = 1` on the
//! linear and cosine paths; the LDM schedule's `b(1) ≈ 0.9977` is taken as 1, like SD 1.x, whose
//! noisiest level still has `a ≈ 0.068`). End: the latent at tau = 0, which is x0 on every path
//! but the LDM schedule, whose native time 0 is its first trained level (`a ≈ 0.99957`,
//! `b ≈ 0.029`): the latent there is returned as is, as SD 1.x's DDIM does (`set_alpha_to_one =
//! false`).

use crate::error::{FormulationError, Result};
use crate::formulation::Formulation;
use crate::integrator::{integrate, SamplerMethod};
use crate::path::{NoiseLevel, Path};
use tch::Tensor;

/// The variable a path's native ODE is integrated in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum NativeClock {
    /// The path's native time t in [0, 1].
    PathTime(Path),
    /// sigma = b/a in [0, inf) on the variance-exploding path (a = 1, b = sigma).
    Sigma,
}

impl NativeClock {
    /// The clock of `path`.
    pub(crate) fn of(path: Path) -> Self {
        match path {
            Path::VarianceExploding => Self::Sigma,
            other => Self::PathTime(other),
        }
    }

    /// The path's level at ODE time `tau`.
    pub(crate) fn level(self, tau: f64) -> NoiseLevel {
        match self {
            Self::PathTime(path) => path.level(tau),
            // Built from sigma directly: b = sigma exactly (the path's t -> t/(1-t) would round).
            Self::Sigma => NoiseLevel {
                t: tau / (1.0 + tau),
                a: 1.0,
                b: tau,
                lambda: -2.0 * tau.ln(),
                t_eq: tau / (1.0 + tau),
            },
        }
    }

    /// `(da/dtau, db/dtau)`.
    fn rates(self, tau: f64) -> (f64, f64) {
        match self {
            Self::PathTime(path) => path.coefficient_rates(tau),
            Self::Sigma => (0.0, 1.0),
        }
    }

    /// The largest ODE time: 1 for path times; sigma is unbounded.
    pub(crate) fn max(self) -> f64 {
        match self {
            Self::PathTime(_) => 1.0,
            Self::Sigma => f64::INFINITY,
        }
    }

    /// The latent at the first time `tau` for standard-normal `noise` (see the module's doc).
    fn start(self, noise: &Tensor, tau: f64) -> Result<Tensor> {
        match self {
            Self::PathTime(_) => Ok(noise.shallow_clone()),
            Self::Sigma => Ok(noise.f_mul_scalar(tau)?),
        }
    }
}

impl Formulation {
    /// The native-frame velocity `a'(tau) x0_hat + b'(tau) eps_hat` of the model for native
    /// latent `z` at ODE time `tau` (see [`crate::native_frame`]). The network is evaluated at the
    /// level of `tau`, or where that lies outside [`Formulation::sampling_t_eq_range`] (eps/cos
    /// at t = 1), at the range's end, with the predictions made consistent with z as in the RF
    /// frame. The first error of `model` comes back as is.
    pub fn native_velocity<F, E>(
        self,
        model: &F,
        z: &Tensor,
        tau: f64,
    ) -> std::result::Result<Tensor, E>
    where
        F: Fn(&Tensor, &Tensor) -> std::result::Result<Tensor, E>,
        E: From<FormulationError>,
    {
        let clock = NativeClock::of(self.path());
        let level = clock.level(tau);
        let (lo, hi) = self.sampling_t_eq_range();
        let network = if (lo..=hi).contains(&level.t_eq) {
            level
        } else {
            self.level_at_t_eq(level.t_eq.clamp(lo, hi))
        };
        let p = self.frame_predictions(model, z, &level, &network)?;
        let (da, db) = clock.rates(tau);
        let v =
            p.x0.f_mul_scalar(da)
                .and_then(|x| x.f_add(&p.eps.f_mul_scalar(db)?))
                .map_err(FormulationError::from)?;
        Ok(v)
    }
}

/// Integrates the formulation's native ODE from standard-normal `noise` through the native
/// ODE times `times` (normally [`crate::native_schedule()`]: decreasing, ending at 0) and returns
/// the native latent at the last time, an x0 sample when it is 0 (see [`crate::native_frame`]
/// for the LDM schedule). The model is fallible: its first error stops sampling and comes back
/// as is.
pub fn sample_native<F, E>(
    formulation: Formulation,
    model: &F,
    noise: &Tensor,
    times: &[f64],
    method: SamplerMethod,
) -> std::result::Result<Tensor, E>
where
    F: Fn(&Tensor, &Tensor) -> std::result::Result<Tensor, E>,
    E: From<FormulationError>,
{
    let clock = NativeClock::of(formulation.path());
    check_times(clock, times)?;
    let z = clock.start(noise, times[0])?;
    integrate(z, times, method, |z, tau| {
        formulation.native_velocity(model, z, tau)
    })
}

/// At least 2 times, strictly decreasing, in [0, 1] (path time, also the RF frame's) or [0, inf)
/// (sigma).
pub(crate) fn check_times(clock: NativeClock, times: &[f64]) -> Result<()> {
    if times.len() < 2 {
        return Err(FormulationError::InvalidParameter(
            "a schedule needs at least 2 times".into(),
        ));
    }
    let max = clock.max();
    if times
        .iter()
        .any(|t| !(*t >= 0.0 && *t <= max && t.is_finite()))
        || times.windows(2).any(|w| w[1] >= w[0])
    {
        let range = match clock {
            NativeClock::PathTime(_) => "[0, 1]",
            NativeClock::Sigma => "[0, inf) (sigma)",
        };
        return Err(FormulationError::InvalidParameter(format!(
            "schedule times must be finite, lie in {range} and strictly decrease, got {times:?}"
        )));
    }
    Ok(())
}
