//! Sampling for sample grids, evaluation and `flowscale generate`: the formulation's ODE sampler
//! in the setting's frame (the RF frame on the SD3 sigma schedule by default, or the
//! formulation's native frame; docs/protocol.md section 7), with classifier-free guidance against
//! the all-zero (dropped) conditioning, or against an explicit unconditional input (a negative
//! prompt's). The first backbone error stops sampling and comes back as is.

use crate::conditioning::Conditioning;
use crate::error::{Result, TrainError};
use flowscale_formulations::{guided, Formulation, SamplerFrame, SamplerMethod};
use tch::Tensor;

/// One sampler setting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplerSetting {
    pub steps: usize,
    /// Guidance scale; 1 evaluates only the conditional branch.
    pub cfg: f64,
    pub shift: f64,
    pub method: SamplerMethod,
    pub frame: SamplerFrame,
}

/// The name of a sampler setting in grid file names and result rows: `s<steps>_cfg<scale>`, with
/// `_native` appended in the native frame, so that settings of the two frames never share a name
/// (and names of the default RF frame are those of before the frames existed).
pub fn setting_label(steps: usize, cfg: f64, frame: SamplerFrame) -> String {
    match frame {
        SamplerFrame::Rf => format!("s{steps}_cfg{cfg}"),
        other => format!("s{steps}_cfg{cfg}_{other}"),
    }
}

/// Sampler steps above this are refused before the schedule is allocated (the paper samples
/// with at most 50; EDM-style studies go to a few hundred).
pub const MAX_SAMPLER_STEPS: usize = 10_000;

impl SamplerSetting {
    /// A guidance scale that is not a finite number >= 0, or a step count out of range, is
    /// refused by name: NaN guidance would otherwise give all-NaN images without an error.
    pub fn check(&self) -> Result<()> {
        if !(self.cfg.is_finite() && self.cfg >= 0.0) {
            return Err(TrainError::Invalid(format!(
                "guidance scale (cfg) must be a finite number >= 0, got {}",
                self.cfg
            )));
        }
        if self.steps == 0 || self.steps > MAX_SAMPLER_STEPS {
            return Err(TrainError::Invalid(format!(
                "sampler steps must be in 1..={MAX_SAMPLER_STEPS}, got {}",
                self.steps
            )));
        }
        Ok(())
    }
}

/// Integrates from `noise` to data with conditioning `cond` and `backbone(x, t, cond) -> out`.
pub fn generate<B>(
    formulation: Formulation,
    setting: SamplerSetting,
    noise: &Tensor,
    cond: &Conditioning,
    backbone: B,
) -> Result<Tensor>
where
    B: Fn(&Tensor, &Tensor, &Conditioning) -> Result<Tensor>,
{
    let uncond = cond.zeros_like()?;
    generate_guided(formulation, setting, noise, cond, &uncond, backbone)
}

/// [`generate`] with `uncond` as guidance's unconditional input instead of zeros: a negative
/// prompt's conditioning, which guidance then steers away from. Unused when `setting.cfg` is 1.
pub fn generate_guided<B>(
    formulation: Formulation,
    setting: SamplerSetting,
    noise: &Tensor,
    cond: &Conditioning,
    uncond: &Conditioning,
    backbone: B,
) -> Result<Tensor>
where
    B: Fn(&Tensor, &Tensor, &Conditioning) -> Result<Tensor>,
{
    setting.check()?;
    let schedule = setting
        .frame
        .schedule(formulation, setting.steps, setting.shift)?;
    let _guard = tch::no_grad_guard();
    ensure_finite(&cond.context, "the conditioning's context tokens")?;
    ensure_finite(&cond.pooled, "the conditioning's pooled vector")?;
    let conditional = |x: &Tensor, t: &Tensor| backbone(x, t, cond);
    let out = if setting.cfg == 1.0 {
        setting
            .frame
            .sample(formulation, &conditional, noise, &schedule, setting.method)?
    } else {
        ensure_finite(&uncond.context, "the unconditional context tokens")?;
        ensure_finite(&uncond.pooled, "the unconditional pooled vector")?;
        let unconditional = |x: &Tensor, t: &Tensor| backbone(x, t, uncond);
        let model = guided(unconditional, conditional, setting.cfg);
        setting
            .frame
            .sample(formulation, &model, noise, &schedule, setting.method)?
    };
    // Inputs were finite, so NaN here comes from the weights (a diverged checkpoint) or the
    // setting: an error, not images of NaN decoded as black and written with success.
    ensure_finite(
        &out,
        "the sampled latents (the weights or the sampler setting)",
    )?;
    Ok(out)
}

/// An error naming `what` when `t` holds NaN or infinite values (one device sync per call:
/// per sampled batch, not per step).
fn ensure_finite(t: &Tensor, what: &str) -> Result<()> {
    let finite = t.numel() == 0 || t.f_isfinite()?.f_all()?.f_int64_value(&[])? != 0;
    if finite {
        Ok(())
    } else {
        Err(TrainError::NonFinite(format!(
            "NaN or infinite values in {what}: sampling would give NaN images"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn cond(b: i64) -> Conditioning {
        Conditioning {
            context: Tensor::ones([b, 1, 2], (Kind::Float, Device::Cpu)),
            pooled: Tensor::ones([b, 2], (Kind::Float, Device::Cpu)),
        }
    }

    /// An RF "network" whose x0 prediction is 1 for positive conditioning, -0.5 for zero
    /// conditioning and 0.25 for negative conditioning, i.e. velocity eps_hat - x0 with eps_hat
    /// derived from z. With exact x0 predictions the Euler sampler lands on the guided x0
    /// m_u + w (m_c - m_u).
    fn net(x: &Tensor, t: &Tensor, c: &Conditioning) -> Result<Tensor> {
        let s = t.double_value(&[0]) / 1000.0;
        let sum = c.pooled.sum(Kind::Float).double_value(&[]);
        let m = match sum {
            v if v > 0.0 => 1.0,
            v if v < 0.0 => 0.25,
            _ => -0.5,
        };
        let x0 = x.full_like(m);
        // v = eps - x0 with eps = (z - (1-s) x0)/s.
        Ok((x - &x0 * (1.0 - s)) / s - &x0)
    }

    const GUIDED: SamplerSetting = SamplerSetting {
        steps: 10,
        cfg: 3.0,
        shift: 1.0,
        method: SamplerMethod::Euler,
        frame: SamplerFrame::Rf,
    };

    #[test]
    fn guidance_extrapolates_from_the_unconditional_branch() {
        let form = Formulation::parse("rf").unwrap();
        let noise = Tensor::randn([3, 1, 2, 2], (Kind::Float, Device::Cpu));
        for frame in SamplerFrame::ALL {
            let setting = SamplerSetting { frame, ..GUIDED };
            let out = generate(form, setting, &noise, &cond(3), net).unwrap();
            let expect = -0.5 + 3.0 * (1.0 + 0.5);
            let err = (out - expect).abs().max().double_value(&[]);
            assert!(err < 1e-4, "{frame}: {err}");
        }
    }

    /// The setting's frame picks the schedule: the native frame of rf steps uniformly in t
    /// (the first evaluation after t = 1 is at 0.9 for 10 steps), the RF frame on SD3's sigmas
    /// (at 1 - 0.999/9 = 0.889); the native frame's refusals come back as errors.
    #[test]
    fn the_frame_picks_the_schedule() {
        let form = Formulation::parse("rf").unwrap();
        let noise = Tensor::randn([1, 1, 2, 2], (Kind::Float, Device::Cpu));
        for (frame, second) in [
            (SamplerFrame::Rf, 1.0 - 0.999 / 9.0),
            (SamplerFrame::Native, 0.9),
        ] {
            let times = std::cell::RefCell::new(Vec::new());
            let recording = |x: &Tensor, t: &Tensor, c: &Conditioning| {
                times.borrow_mut().push(t.double_value(&[0]) / 1000.0);
                net(x, t, c)
            };
            let setting = SamplerSetting {
                frame,
                cfg: 1.0,
                ..GUIDED
            };
            let _sample = generate(form, setting, &noise, &cond(1), recording).unwrap();
            let times = times.into_inner();
            assert_eq!(times.len(), 10, "{frame}");
            assert!((times[1] - second).abs() < 1e-5, "{frame}: {times:?}");
        }
        let ldm = Formulation::parse("eps/linear").unwrap();
        let setting = SamplerSetting {
            frame: SamplerFrame::Native,
            shift: 3.0,
            ..GUIDED
        };
        let err = generate(ldm, setting, &noise, &cond(1), net)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("eps/linear") && err.contains("shift 3"),
            "{err}"
        );
    }

    #[test]
    fn setting_labels_name_the_frame_unless_it_is_the_default() {
        assert_eq!(setting_label(50, 2.5, SamplerFrame::Rf), "s50_cfg2.5");
        assert_eq!(
            setting_label(5, 5.0, SamplerFrame::Native),
            "s5_cfg5_native"
        );
    }

    #[test]
    fn nan_guidance_and_absurd_step_counts_are_refused_by_name() {
        let form = Formulation::parse("rf").unwrap();
        let noise = Tensor::randn([1, 1, 2, 2], (Kind::Float, Device::Cpu));
        for (cfg, steps, word) in [
            (f64::NAN, 4, "cfg"),
            (-1.0, 4, "cfg"),
            (f64::INFINITY, 4, "cfg"),
            (2.0, 0, "steps"),
            (2.0, 1_000_000_000, "steps"),
        ] {
            let setting = SamplerSetting {
                cfg,
                steps,
                ..GUIDED
            };
            let e = generate(form, setting, &noise, &cond(1), net)
                .unwrap_err()
                .to_string();
            assert!(e.contains(word), "{cfg} {steps}: {e}");
        }
    }

    #[test]
    fn an_explicit_unconditional_input_replaces_the_zeros() {
        let form = Formulation::parse("rf").unwrap();
        let noise = Tensor::randn([3, 1, 2, 2], (Kind::Float, Device::Cpu));
        let c = cond(3);
        let negative = Conditioning {
            context: -c.context.ones_like(),
            pooled: -c.pooled.ones_like(),
        };
        let out = generate_guided(form, GUIDED, &noise, &c, &negative, net).unwrap();
        let expect = 0.25 + 3.0 * (1.0 - 0.25);
        let err = (out - expect).abs().max().double_value(&[]);
        assert!(err < 1e-4, "{err}");
        // With zeros given explicitly it is `generate`.
        let zeros = c.zeros_like().unwrap();
        let a = generate_guided(form, GUIDED, &noise, &c, &zeros, net).unwrap();
        let b = generate(form, GUIDED, &noise, &c, net).unwrap();
        assert!(a.equal(&b));
    }

    /// NaN conditioning (from a shard, an encoder or a file) and weights that sample NaN gave
    /// NaN images written with exit status 0: both are errors naming where the NaN is.
    #[test]
    fn nan_conditioning_or_nan_samples_are_errors_naming_them() {
        let form = Formulation::parse("rf").unwrap();
        let noise = Tensor::ones([2, 3], (Kind::Float, Device::Cpu));
        let nan_pooled = cond(2);
        let _ = nan_pooled.pooled.get(1).get(0).fill_(f64::NAN);
        for setting in [GUIDED, SamplerSetting { cfg: 1.0, ..GUIDED }] {
            let err = generate(form, setting, &noise, &nan_pooled, net)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("NaN or infinite values in the conditioning's pooled"),
                "{err}"
            );
        }
        let uncond = cond(2);
        let _ = uncond.context.get(0).fill_(f64::INFINITY);
        let err = generate_guided(form, GUIDED, &noise, &cond(2), &uncond, net)
            .unwrap_err()
            .to_string();
        assert!(err.contains("in the unconditional context tokens"), "{err}");
        let diverged = |x: &Tensor, _: &Tensor, _: &Conditioning| Ok(x.full_like(f64::NAN));
        let err = generate(form, GUIDED, &noise, &cond(2), diverged)
            .unwrap_err()
            .to_string();
        assert!(err.contains("in the sampled latents"), "{err}");
        // Finite inputs and a finite network still sample.
        assert!(generate(form, GUIDED, &noise, &cond(2), net).is_ok());
    }

    #[test]
    fn backbone_errors_come_back() {
        let form = Formulation::parse("rf").unwrap();
        let net = |_x: &Tensor, _t: &Tensor, _c: &Conditioning| -> Result<Tensor> {
            Err(TrainError::Invalid("backbone broke".into()))
        };
        let noise = Tensor::randn([1, 1, 2, 2], (Kind::Float, Device::Cpu));
        let setting = SamplerSetting {
            steps: 3,
            cfg: 1.0,
            shift: 1.0,
            method: SamplerMethod::Euler,
            frame: SamplerFrame::Rf,
        };
        let err = generate(form, setting, &noise, &cond(1), net).unwrap_err();
        assert!(err.to_string().contains("backbone broke"));
    }
}
