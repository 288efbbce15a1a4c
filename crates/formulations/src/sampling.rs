//! Sampling side: prediction conversions, the sigma schedule, Euler / Heun ODE samplers, CFG.
//!
//! Frame: every formulation is sampled on the RF path `z = (1-s) x0 + s eps` in RF time s from 1
//! to 0 (`dz = (eps_hat - x0_hat) ds`), whatever path it was trained on. A network trained on any
//! path is a function of the log-SNR, and at equal log-SNR the native latent is
//! `z_native = (a + b) z_rf` with `s = t_eq = b/(a+b)`; so the same ODE, discretised on the same
//! schedule (the SD3 scheduler's sigmas are RF times), serves all 61 formulations and differences
//! in samples come from training alone. Network evaluations are clamped to
//! [`Formulation::sampling_t_eq_range`] (relevant for the LDM schedule, whose noisiest trained
//! level still has `a ≈ 0.068`: like SD 1.x, we start from pure noise regardless); outside the
//! range the velocity is made consistent with the current latent (see [`Formulation::rf_velocity`]).

use crate::error::{FormulationError, Result};
use crate::formulation::Formulation;
use crate::path::NoiseLevel;
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
        let level = self.level_at_t_eq(s.clamp(lo, hi));
        let (net_in, t_in) = self.rf_network_input(z_rf, &level)?;
        let out = model(&net_in, &t_in)?;
        Ok(self.rf_velocity_from_output(&out, z_rf, s, &level)?)
    }

    /// The network input and time input at `level` for RF latent `z_rf`.
    fn rf_network_input(self, z_rf: &Tensor, level: &NoiseLevel) -> Result<(Tensor, Tensor)> {
        let param = self.parameterisation();
        let scale = level.a + level.b; // z_native = scale · z_rf
        let batch = z_rf.size().first().copied().unwrap_or(1);
        let t_in = Tensor::f_full(
            [batch].as_slice(),
            self.time_input(level),
            (z_rf.kind(), z_rf.device()),
        )?;
        let net_in = z_rf.f_mul_scalar(param.input_scale(level) * scale)?;
        Ok((net_in, t_in))
    }

    /// The RF velocity at RF time `s` from the network output `out` at `level`, the clamped
    /// level of `s` (see [`Self::rf_network_input`]).
    fn rf_velocity_from_output(
        self,
        out: &Tensor,
        z_rf: &Tensor,
        s: f64,
        level: &NoiseLevel,
    ) -> Result<Tensor> {
        let (lo, hi) = self.sampling_t_eq_range();
        let scale = level.a + level.b;
        let c = self.parameterisation().conversion(level);
        let x0 = out
            .f_mul_scalar(c.x0_from_out)?
            .f_add(&z_rf.f_mul_scalar(c.x0_from_z * scale)?)?;
        let eps = z_rf
            .f_mul_scalar(c.eps_from_z * scale)?
            .f_add(&out.f_mul_scalar(c.eps_from_out)?)?;
        // Inside the range the two predictions satisfy z_rf = (1-s) x0 + s eps exactly. Outside it
        // the network was evaluated at a different level, so keep the prediction that is reliable
        // there (x0 towards noise, eps towards data) and derive the other one from z_rf: the
        // Euler step then is a DDIM step that stays consistent with the current latent.
        let (x0, eps) = if s > hi {
            let eps = z_rf
                .f_sub(&x0.f_mul_scalar(1.0 - s)?)?
                .f_mul_scalar(1.0 / s)?;
            (x0, eps)
        } else if s < lo {
            let x0 = z_rf
                .f_sub(&eps.f_mul_scalar(s)?)?
                .f_mul_scalar(1.0 / (1.0 - s))?;
            (x0, eps)
        } else {
            (x0, eps)
        };
        Ok(eps.f_sub(&x0)?)
    }
}

/// The ODE discretisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamplerMethod {
    /// First-order Euler (the paper's protocol).
    Euler,
    /// Heun's second-order method (Euler on the last step to s = 0).
    Heun,
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
    check_schedule(schedule)?;
    let mut z = noise.shallow_clone();
    for w in schedule.windows(2) {
        let (s, s_next) = (w[0], w[1]);
        let dt = s_next - s;
        let v = formulation.rf_velocity(model, &z, s)?;
        let euler = euler_step(&z, &v, dt)?;
        z = match method {
            SamplerMethod::Heun if s_next > 0.0 => {
                let v2 = formulation.rf_velocity(model, &euler, s_next)?;
                heun_step(&z, &v, &v2, dt)?
            }
            _ => euler,
        };
    }
    Ok(z)
}

/// At least 2 times in [0, 1], strictly decreasing.
fn check_schedule(schedule: &[f64]) -> Result<()> {
    if schedule.len() < 2 {
        return Err(FormulationError::InvalidParameter(
            "a schedule needs at least 2 times".into(),
        ));
    }
    if schedule.iter().any(|s| !(0.0..=1.0).contains(s))
        || schedule.windows(2).any(|w| w[1] >= w[0])
    {
        return Err(FormulationError::InvalidParameter(
            "schedule times must lie in [0, 1] and strictly decrease".into(),
        ));
    }
    Ok(())
}

/// `z + v dt`.
fn euler_step(z: &Tensor, v: &Tensor, dt: f64) -> Result<Tensor> {
    Ok(z.f_add(&v.f_mul_scalar(dt)?)?)
}

/// `z + (v + v2) dt / 2`.
fn heun_step(z: &Tensor, v: &Tensor, v2: &Tensor, dt: f64) -> Result<Tensor> {
    Ok(z.f_add(&v.f_add(v2)?.f_mul_scalar(dt / 2.0)?)?)
}
