//! The backbone's time input in each family's own convention (docs/protocol.md section 1).
//!
//! By default every family gets the common input `1000 t_eq` ([`Formulation::time_input`]): a
//! function of the noise level alone, so one backbone serves every family, and exactly SD3's
//! input for rf. The native inputs are what each family's own code feeds its network: the LDM
//! schedule's step index `k` in 0..=999 (continuous between steps, on the same piecewise-linear
//! log-SNR as [`Path::LdmLinear`]), EDM's `c_noise = ln(sigma) / 4`, and `1000 t` in the path's
//! native time for the cosine schedule (for rf native time is `t_eq`, so nothing changes).
//!
//! The conversion works on the common input as a tensor, on its device, so it applies wherever
//! the backbone is called (training, validation, sampling) without another host round trip;
//! [`NativeTimeInput`] puts the LDM table on that device once, not at every call.

use crate::error::Result;
use crate::formulation::{Formulation, TIME_INPUT_SCALE};
use crate::path::{ldm_lambdas, Path, LDM_STEPS};
use std::f64::consts::PI;
use tch::{Device, Kind, Tensor};

/// How far from 0 and 1 `t_eq` is kept before logs and ratios: the ends are pure data or pure
/// noise, where EDM's `ln(sigma)` is infinite; no sampler or validation level goes closer.
const T_EQ_MARGIN: f64 = 1e-7;

impl Formulation {
    /// The native time input at equal-SNR time `t_eq` (the reference for [`NativeTimeInput`]).
    pub fn native_time_input_at(self, t_eq: f64) -> f64 {
        let t = t_eq.clamp(T_EQ_MARGIN, 1.0 - T_EQ_MARGIN);
        let path = self.path();
        match path {
            Path::Linear => TIME_INPUT_SCALE * t,
            Path::Cosine => TIME_INPUT_SCALE * path.t_from_t_eq(t),
            Path::LdmLinear => (LDM_STEPS - 1) as f64 * path.t_from_t_eq(t),
            Path::VarianceExploding => (t / (1.0 - t)).ln() / 4.0,
        }
    }
}

/// A formulation's native time input from the common one (`1000 t_eq`, any shape), elementwise,
/// on one device.
pub enum NativeTimeInput {
    /// rf: the common input itself (native time is `t_eq`).
    Linear,
    /// `1000 t` in the cosine schedule's time.
    Cosine,
    /// EDM's `ln(sigma) / 4`.
    EdmNoise,
    /// The LDM step index; the table is the schedule's negated log-SNR per step (increasing, as
    /// searchsorted needs) on the device.
    LdmStep { table: Tensor },
}

impl NativeTimeInput {
    pub fn new(formulation: Formulation, device: Device) -> Result<Self> {
        Ok(match formulation.path() {
            Path::Linear => Self::Linear,
            Path::Cosine => Self::Cosine,
            Path::VarianceExploding => Self::EdmNoise,
            Path::LdmLinear => {
                let table: Vec<f64> = ldm_lambdas().iter().map(|l| -l).collect();
                Self::LdmStep {
                    table: Tensor::f_from_slice(&table)?.f_to_device(device)?,
                }
            }
        })
    }

    /// The native input for the common input `common`.
    pub fn apply(&self, common: &Tensor) -> Result<Tensor> {
        let kind = common.kind();
        let t = common
            .f_to_kind(Kind::Double)?
            .f_div_scalar(TIME_INPUT_SCALE)?
            .f_clamp(T_EQ_MARGIN, 1.0 - T_EQ_MARGIN)?;
        // sigma = t / (1 - t) = b / a at equal SNR.
        let sigma = || -> Result<Tensor> { Ok(t.f_div(&t.f_neg()?.f_add_scalar(1.0)?)?) };
        let native = match self {
            Self::Linear => t.f_mul_scalar(TIME_INPUT_SCALE)?,
            // t = (2/pi) atan(b/a) = (2/pi) atan(sigma).
            Self::Cosine => sigma()?
                .f_atan()?
                .f_mul_scalar(TIME_INPUT_SCALE * 2.0 / PI)?,
            Self::EdmNoise => sigma()?.f_log()?.f_div_scalar(4.0)?,
            Self::LdmStep { table } => ldm_step(table, &sigma()?)?,
        };
        Ok(native.f_to_kind(kind)?)
    }
}

/// The continuous LDM step index with noise-to-signal ratio `sigma`: log-SNR `-2 ln sigma`,
/// interpolated linearly between the table's steps (which is how [`Path::LdmLinear`] extends
/// the table), clamped to 0..=999. `table` is [`NativeTimeInput::LdmStep`]'s.
fn ldm_step(table: &Tensor, sigma: &Tensor) -> Result<Tensor> {
    let x = sigma.f_log()?.f_mul_scalar(2.0)?; // -lambda
    let upper = x
        .f_searchsorted(table, false, false, "left", None::<Tensor>)?
        .f_clamp(1, (LDM_STEPS - 1) as i64)?;
    let lower = upper.f_sub_scalar(1)?;
    let (lo, hi) = (
        table.f_index_select(0, &lower.f_flatten(0, -1)?)?,
        table.f_index_select(0, &upper.f_flatten(0, -1)?)?,
    );
    let (lo, hi) = (lo.f_view_as(&x)?, hi.f_view_as(&x)?);
    let frac = x.f_sub(&lo)?.f_div(&hi.f_sub(&lo)?)?;
    Ok(lower
        .f_to_kind(Kind::Double)?
        .f_add(&frac)?
        .f_clamp(0.0, (LDM_STEPS - 1) as f64)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tensor conversion agrees with the host formula at levels across (0, 1) for all 61,
    /// and gives each family its own convention.
    #[test]
    fn native_inputs_match_the_host_formula_for_every_formulation() {
        let t_eq: Vec<f64> = (1..200)
            .map(|i| i as f64 / 200.0)
            .chain([1e-4, 0.9999])
            .collect();
        let common = Tensor::from_slice(&t_eq)
            .f_mul_scalar(TIME_INPUT_SCALE)
            .unwrap();
        for f in crate::registry() {
            let native = NativeTimeInput::new(f, Device::Cpu).unwrap();
            let got = Vec::<f64>::try_from(native.apply(&common).unwrap()).unwrap();
            for (t, g) in t_eq.iter().zip(&got) {
                let want = f.native_time_input_at(*t);
                assert!(
                    (g - want).abs() <= 1e-6 * want.abs().max(1.0),
                    "{f} t_eq {t}: {g} vs {want}"
                );
            }
        }
    }

    #[test]
    fn each_family_gets_its_own_convention() {
        let at = |name: &str, t: f64| Formulation::parse(name).unwrap().native_time_input_at(t);
        // rf: unchanged.
        assert_eq!(at("rf", 0.25), 250.0);
        // EDM: c_noise = ln(sigma)/4 with sigma = t/(1-t): sigma = 1 at t_eq = 1/2.
        assert!(at("edm(0.00, 0.60)", 0.5).abs() < 1e-12);
        assert!((at("edm/rf", 0.8) - 4f64.ln() / 4.0).abs() < 1e-12);
        // Cosine: t_eq = 1/2 is t = 1/2 (a = b), so 500.
        assert!((at("v/cos", 0.5) - 500.0).abs() < 1e-9);
        // LDM: the level of integer step k comes back as k.
        let f = Formulation::parse("eps/linear").unwrap();
        for k in [0usize, 1, 250, 500, 998, 999] {
            let level = Path::LdmLinear.level(k as f64 / (LDM_STEPS - 1) as f64);
            let got = f.native_time_input_at(level.t_eq);
            assert!((got - k as f64).abs() < 1e-6, "step {k}: {got}");
            let tensor = NativeTimeInput::new(f, Device::Cpu)
                .unwrap()
                .apply(&Tensor::from_slice(&[1000.0 * level.t_eq]))
                .unwrap();
            assert!(
                (tensor.double_value(&[0]) - k as f64).abs() < 1e-6,
                "step {k}"
            );
        }
    }
}
