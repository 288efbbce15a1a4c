//! The ODE discretisations shared by both sampler frames ([`crate::SamplerFrame`]): Euler and
//! Heun steps over a decreasing list of times, with the velocity supplied by the frame.
//!
//! Step convention (docs/protocol.md section 7): a schedule of N + 1 times `t_0 > ... > t_N` is N
//! steps; Euler evaluates the velocity once per step, at `t_0 .. t_{N-1}`, never at the end time
//! `t_N`, so N steps are N network evaluations and each moves the latent by `(t_{i+1} - t_i) v`.
//! Heun adds a second evaluation at `t_{i+1}` on every step but the last, which ends at
//! `t_N = 0` (data): 2N - 1 evaluations.

use crate::error::{FormulationError, Result};
use tch::Tensor;

/// The ODE discretisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamplerMethod {
    /// First-order Euler (the paper's protocol).
    Euler,
    /// Heun's second-order method (Euler on the last step to t = 0).
    Heun,
}

/// Integrates `dz/dt = velocity(z, t)` from `z` at `times[0]` through `times` (checked by the
/// caller) and returns the latent at the last time. The first error of `velocity` comes back
/// as is.
pub(crate) fn integrate<V, E>(
    z: Tensor,
    times: &[f64],
    method: SamplerMethod,
    mut velocity: V,
) -> std::result::Result<Tensor, E>
where
    V: FnMut(&Tensor, f64) -> std::result::Result<Tensor, E>,
    E: From<FormulationError>,
{
    let mut z = z;
    for w in times.windows(2) {
        let (t, t_next) = (w[0], w[1]);
        let dt = t_next - t;
        let v = velocity(&z, t)?;
        let euler = euler_step(&z, &v, dt)?;
        z = match method {
            SamplerMethod::Heun if t_next > 0.0 => {
                let v2 = velocity(&euler, t_next)?;
                heun_step(&z, &v, &v2, dt)?
            }
            _ => euler,
        };
    }
    Ok(z)
}

/// `z + v dt`.
fn euler_step(z: &Tensor, v: &Tensor, dt: f64) -> Result<Tensor> {
    Ok(z.f_add(&v.f_mul_scalar(dt)?)?)
}

/// `z + (v + v2) dt / 2`.
fn heun_step(z: &Tensor, v: &Tensor, v2: &Tensor, dt: f64) -> Result<Tensor> {
    Ok(z.f_add(&v.f_add(v2)?.f_mul_scalar(dt / 2.0)?)?)
}
