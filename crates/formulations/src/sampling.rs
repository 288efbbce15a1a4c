//! Sampling side: prediction conversions, the RF sampler frame and its sigma schedule, CFG.
//!
//! RF frame (the default [`crate::SamplerFrame`]): every formulation is sampled on the RF path
//! `z = (1-s) x0 + s eps` in RF time s from 1 to 0 (`dz = (eps_hat - x0_hat) ds`), whatever path
//! it was trained on. A network trained on any path is a function of the log-SNR, and at equal
//! log-SNR the native latent is `z_native = (a + b) z_rf` with `s = t_eq = b/(a+b)`; so the same
//! ODE, discretised on the same schedule (the SD3 scheduler's sigmas are RF times), serves all 61
//! formulations and differences in samples come from training alone. Network evaluations are
//! clamped to [`Formulation::sampling_t_eq_range`] (relevant for the LDM schedule, whose noisiest
//! trained level still has `a ≈ 0.068`: like SD 1.x, we start from pure noise regardless);
//! outside the range the velocity is made consistent with the current latent (see
//! [`Formulation::rf_velocity`]). The other frame, each formulation's own ODE on its own
//! schedule, is [`crate::native_frame`].

use crate::error::{FormulationError, Result};
use crate::formulation::Formulation;
use crate::integrator::integrate;
pub use crate::integrator::SamplerMethod;
use crate::native_frame::{check_times, NativeClock};
use crate::path::{NoiseLevel, Path};
use crate::shift::Shift;
use tch::Tensor;

/// x0 and eps predictions in the native frame of a level.
#[derive(Debug)]
pub struct Predictions {
    pub x0: Tensor,
    pub eps: Tensor,
}

impl Predictions {
    /// RF velocity `eps - x0`.
    pub fn rf_velocity(&self) -> Result<Tensor> {
        Ok(self.eps.f_sub(&self.x0)?)
    }
    /// VP velocity `a eps - b x0` at `level`.
    pub fn vp_velocity(&self, level: &NoiseLevel) -> Result<Tensor> {
        Ok(self
            .eps
            .f_mul_scalar(level.a)?
            .f_sub(&self.x0.f_mul_scalar(level.b)?)?)
    }
}

impl Formulation {
    /// Converts a raw network output at `level` (native latent `z`) into x0 / eps predictions.
    pub fn predictions(
        self,
        output: &Tensor,
        z: &Tensor,
        level: &NoiseLevel,
    ) -> Result<Predictions> {
        let c = self.parameterisation().conversion(level);
        Ok(Predictions {
            x0: output
                .f_mul_scalar(c.x0_from_out)?
                .f_add(&z.f_mul_scalar(c.x0_from_z)?)?,
            eps: z
                .f_mul_scalar(c.eps_from_z)?
                .f_add(&output.f_mul_scalar(c.eps_from_out)?)?,
        })
    }

    /// The RF-frame velocity `eps_hat - x0_hat` of the model at RF time `s` for RF latent `z_rf`.
    /// The first error of `model` comes back as is.
    pub fn rf_velocity<F, E>(
        self,
        model: &F,
        z_rf: &Tensor,
        s: f64,
    ) -> std::result::Result<Tensor, E>
    where
        F: Fn(&Tensor, &Tensor) -> std::result::Result<Tensor, E>,
        E: From<FormulationError>,
    {
        let (lo, hi) = self.sampling_t_eq_range();
        let network = self.level_at_t_eq(s.clamp(lo, hi));
        let p = self.frame_predictions(model, z_rf, &Path::Linear.level(s), &network)?;
        Ok(p.rf_velocity()?)
    }

    /// x0 and eps predictions for a latent `z = a x0 + b eps` of a sampler frame at `frame` (the
    /// RF path's level or the formulation's own), from one evaluation of `model` at `network`:
    /// the formulation's level at `frame.t_eq`, clamped to [`Formulation::sampling_t_eq_range`].
    ///
    /// The network sees the native latent of `network`, `z · (a_n + b_n)/(a + b)` (equal log-SNR
    /// makes the two latents proportional). Inside the range the two predictions satisfy
    /// `z = a x0 + b eps` exactly. Outside it the network was evaluated at a different level, so
    /// the prediction that is reliable there is kept (x0 towards noise, eps towards data) and the
    /// other is derived from z: an Euler step of the RF frame is then a DDIM step that stays
    /// consistent with the current latent.
    pub(crate) fn frame_predictions<F, E>(
        self,
        model: &F,
        z: &Tensor,
        frame: &NoiseLevel,
        network: &NoiseLevel,
    ) -> std::result::Result<Predictions, E>
    where
        F: Fn(&Tensor, &Tensor) -> std::result::Result<Tensor, E>,
        E: From<FormulationError>,
    {
        let param = self.parameterisation();
        let scale = (network.a + network.b) / (frame.a + frame.b);
        let batch = z.size().first().copied().unwrap_or(1);
        let t_in = Tensor::f_full(
            [batch].as_slice(),
            self.time_input(network),
            (z.kind(), z.device()),
        )
        .map_err(FormulationError::from)?;
        let net_in = z
            .f_mul_scalar(param.input_scale(network) * scale)
            .map_err(FormulationError::from)?;
        let out = model(&net_in, &t_in)?;
        Ok(consistent_predictions(
            self, &out, z, frame, network, scale,
        )?)
    }
}

/// The predictions of [`Formulation::frame_predictions`] from the network output `out`.
fn consistent_predictions(
    formulation: Formulation,
    out: &Tensor,
    z: &Tensor,
    frame: &NoiseLevel,
    network: &NoiseLevel,
    scale: f64,
) -> Result<Predictions> {
    let (lo, hi) = formulation.sampling_t_eq_range();
    let c = formulation.parameterisation().conversion(network);
    let x0 = out
        .f_mul_scalar(c.x0_from_out)?
        .f_add(&z.f_mul_scalar(c.x0_from_z * scale)?)?;
    let eps = z
        .f_mul_scalar(c.eps_from_z * scale)?
        .f_add(&out.f_mul_scalar(c.eps_from_out)?)?;
    let (x0, eps) = if frame.t_eq > hi {
        let eps = z
            .f_sub(&x0.f_mul_scalar(frame.a)?)?
            .f_mul_scalar(1.0 / frame.b)?;
        (x0, eps)
    } else if frame.t_eq < lo {
        let x0 = z
            .f_sub(&eps.f_mul_scalar(frame.b)?)?
            .f_mul_scalar(1.0 / frame.a)?;
        (x0, eps)
    } else {
        (x0, eps)
    };
    Ok(Predictions { x0, eps })
}

/// The sigmas of diffusers' SD3 scheduler (docs/protocol.md section 7): `linspace(1, shift(0.001), N)`
/// shifted again, then a final 0. Returns N + 1 RF times, decreasing from 1 to 0.
pub fn sd3_sigmas(steps: usize, shift: f64) -> Result<Vec<f64>> {
    if steps == 0 {
        return Err(FormulationError::InvalidParameter(
            "steps must be > 0".into(),
        ));
    }
    let shift = Shift::new(shift)?;
    let end = shift.apply(1.0 / 1000.0);
    let mut sigmas: Vec<f64> = (0..steps)
        .map(|i| {
            let f = if steps == 1 {
                0.0
            } else {
                i as f64 / (steps - 1) as f64
            };
            shift.apply(1.0 + f * (end - 1.0))
        })
        .collect();
    sigmas.push(0.0);
    Ok(sigmas)
}

/// A plain schedule `shift(1 - i/N)`, i = 0..N, ending exactly at 0.
pub fn uniform_schedule(steps: usize, shift: f64) -> Result<Vec<f64>> {
    if steps == 0 {
        return Err(FormulationError::InvalidParameter(
            "steps must be > 0".into(),
        ));
    }
    let shift = Shift::new(shift)?;
    Ok((0..=steps)
        .map(|i| shift.apply(1.0 - i as f64 / steps as f64))
        .collect())
}

/// Classifier-free guidance on outputs: `u + w (c - u)`. Outputs of every parameterisation are
/// affine in (z, output) at fixed z, so guiding raw outputs equals guiding velocities.
pub fn cfg(uncond: &Tensor, cond: &Tensor, scale: f64) -> Result<Tensor> {
    Ok(uncond.f_add(&cond.f_sub(uncond)?.f_mul_scalar(scale)?)?)
}

/// A guided model from unconditional and conditional models: [`cfg`] of their outputs. The
/// unconditional branch runs first; the first error of either comes back as is.
pub fn guided<U, C, E>(
    uncond: U,
    cond: C,
    scale: f64,
) -> impl Fn(&Tensor, &Tensor) -> std::result::Result<Tensor, E>
where
    U: Fn(&Tensor, &Tensor) -> std::result::Result<Tensor, E>,
    C: Fn(&Tensor, &Tensor) -> std::result::Result<Tensor, E>,
    E: From<FormulationError>,
{
    move |z, t| {
        let u = uncond(z, t)?;
        let c = cond(z, t)?;
        Ok(cfg(&u, &c, scale)?)
    }
}

/// Integrates from `noise` (at `schedule[0]`, normally 1) through the RF times of `schedule`
/// (decreasing, normally ending at 0) and returns the final latent, an x0 sample when the schedule
/// ends at 0. The model is fallible: its first error stops sampling and comes back as is.
pub fn sample<F, E>(
    formulation: Formulation,
    model: &F,
    noise: &Tensor,
    schedule: &[f64],
    method: SamplerMethod,
) -> std::result::Result<Tensor, E>
where
    F: Fn(&Tensor, &Tensor) -> std::result::Result<Tensor, E>,
    E: From<FormulationError>,
{
    // RF times: the linear path's native time.
    check_times(NativeClock::PathTime(Path::Linear), schedule)?;
    integrate(noise.shallow_clone(), schedule, method, |z, s| {
        formulation.rf_velocity(model, z, s)
    })
}
