//! The native frame's schedules (docs/protocol.md section 7): N steps are N + 1 ODE times from the
//! path's noisiest time down to 0, one rule per family.
//!
//! - Linear (rf), cosine, LDM: uniform in native time, `t_i = 1 - i/N`. For rf this is the plain
//!   discretisation of its ODE; for the cosine path it is the uniform t its formulations are
//!   trained on; for the LDM schedule it is uniform over the levels 999..0 like DDIM's "trailing"
//!   spacing, kept continuous (`k_i = 999 t_i`, between trained levels the log-SNR is interpolated
//!   as in [`crate::Path::LdmLinear`]) so that every N gives distinct times.
//! - Variance-exploding (EDM): EDM's own spacing (Karras et al. 2022), uniform in `sigma^(1/rho)`
//!   with `rho = 7` from `sigma_max = 80` to `sigma_min = 0.002`, on N + 1 points of which the
//!   last, sigma_min, is taken as 0. EDM's Algorithm 1 instead evaluates at sigma_min and then
//!   steps to 0; that last evaluation only removes noise of std 0.002 (on the Gaussian test data
//!   it moves the sample by 1.5e-7 of its norm at 2 steps), so N of its steps are N - 1 steps of
//!   the schedule plus a wasted evaluation. Taking sigma_min as the data end keeps every
//!   evaluation a step of the rho-spacing (docs/protocol.md section 7, the step convention).
//!   Uniform in t = sigma/(1+sigma) would start from t = 1, where sigma is infinite.
//!
//! Shift: the resolution shift lowers the log-SNR of every time by `2 ln alpha` (it is applied to
//! `t_eq`, [`crate::shift`]), as in training ([`Formulation::shifted_time`]). On sigma that is
//! `sigma -> alpha sigma`, start included (EDM then starts from `80 alpha · eps`). On the path
//! times the two ends stay (pure noise at t = 1, data at t = 0; the shift fixes them on the linear
//! and cosine paths anyway) and the interior times move. The LDM schedule's log-SNR is bounded,
//! so it takes no shift: any alpha != 1 pushes the times next to level 999 (alpha > 1) or level 0
//! (alpha < 1) past it once N is large enough (alpha = 3: from N = 5; 1.25: from N = 27), and the
//! steps would collapse onto the end.

use crate::edm::{EDM_RHO, EDM_SIGMA_MAX, EDM_SIGMA_MIN};
use crate::error::{FormulationError, Result};
use crate::formulation::Formulation;
use crate::native_frame::{check_times, NativeClock};
use crate::path::Path;
use crate::shift::Shift;

/// The native ODE times of `formulation` for `steps` steps and resolution shift `shift`: N + 1
/// times, strictly decreasing, the last 0 (path times, or sigmas on the variance-exploding path).
pub fn native_schedule(formulation: Formulation, steps: usize, shift: f64) -> Result<Vec<f64>> {
    if steps == 0 {
        return Err(FormulationError::InvalidParameter(
            "steps must be > 0".into(),
        ));
    }
    let shift = Shift::new(shift)?;
    if formulation.path() == Path::LdmLinear && shift.alpha() != 1.0 {
        return Err(FormulationError::InvalidParameter(format!(
            "{formulation} takes no shift in the native sampler frame (got shift {}): the LDM \
             schedule's log-SNR ends at level 999, and lowering it by 2 ln(shift) moves the times \
             next to that end past it (at shift 3 from 5 steps up); use shift 1 or the rf frame",
            shift.alpha()
        )));
    }
    let clock = NativeClock::of(formulation.path());
    let times = match clock {
        NativeClock::Sigma => karras_sigmas(steps, shift),
        NativeClock::PathTime(_) => uniform_path_times(formulation, steps, shift),
    };
    check_times(clock, &times)?;
    Ok(times)
}

/// `t_i = 1 - i/N` with the interior times shifted through `t_eq`.
fn uniform_path_times(formulation: Formulation, steps: usize, shift: Shift) -> Vec<f64> {
    (0..=steps)
        .map(|i| match i {
            0 => 1.0,
            i if i == steps => 0.0,
            i => {
                let t = 1.0 - i as f64 / steps as f64;
                if shift.alpha() == 1.0 {
                    t
                } else {
                    formulation.shifted_time(t, Some(shift))
                }
            }
        })
        .collect()
}

/// `alpha (sigma_max^(1/rho) + i/N (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho` for i < N, then 0
/// in place of `alpha sigma_min` (see the module's doc).
fn karras_sigmas(steps: usize, shift: Shift) -> Vec<f64> {
    let (hi, lo) = (
        EDM_SIGMA_MAX.powf(1.0 / EDM_RHO),
        EDM_SIGMA_MIN.powf(1.0 / EDM_RHO),
    );
    let mut sigmas: Vec<f64> = (0..steps)
        .map(|i| {
            let f = i as f64 / steps as f64;
            shift.alpha() * (hi + f * (lo - hi)).powf(EDM_RHO)
        })
        .collect();
    sigmas.push(0.0);
    sigmas
}
