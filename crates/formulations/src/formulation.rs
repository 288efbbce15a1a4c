//! A formulation = path + timestep distribution + parameterisation + loss weight.
//!
//! The variants mirror the names of the study (docs/protocol.md section 3); the orthogonal parts are
//! derived from them by [`Formulation::path`], [`Formulation::timesteps`],
//! [`Formulation::parameterisation`] and [`Formulation::loss_weight`]. A resolution shift is not a
//! property of a formulation but of a training/sampling configuration, and is passed separately.

use crate::edm::EDM_SIGMA_MIN;
use crate::error::Result;
use crate::parameterisation::{Parameterisation, EDM_SIGMA_DATA};
use crate::path::{ldm_lambdas, NoiseLevel, Path, LDM_STEPS};
use crate::shift::Shift;
use crate::special::sigmoid;
use crate::timesteps::TimestepDistribution;
use crate::weighting::LossWeight;

/// Scale of the time input: the network sees `TIME_INPUT_SCALE · t_eq`.
pub const TIME_INPUT_SCALE: f64 = 1000.0;

/// One formulation of the study. Parameters keep their exact values; names are labels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Formulation {
    /// eps-prediction on the discrete LDM linear schedule.
    EpsLinear,
    /// eps-prediction on the cosine schedule.
    EpsCos,
    /// VP-velocity prediction on the discrete LDM linear schedule.
    VLinear,
    /// VP-velocity prediction on the cosine schedule.
    VCos,
    /// Rectified flow with uniform t (`rf`).
    Rf,
    /// Rectified flow with mode-with-heavy-tails t (`rf/mode(s)`).
    RfMode { scale: f64 },
    /// Rectified flow with logit-normal t (`rf/lognorm(m, s)`).
    RfLogNorm { mean: f64, std: f64 },
    /// Rectified flow with CosMap t (`rf/cosmap`).
    RfCosMap,
    /// EDM with `ln sigma ~ N(p_mean, p_std^2)` (`edm(P_m, P_s)`).
    Edm { p_mean: f64, p_std: f64 },
    /// EDM with `sigma = t/(1-t)`, t ~ U: the log-SNR distribution of rf (`edm/rf`).
    EdmRf,
    /// EDM with `sigma = tan(pi t/2)`, t ~ U: the log-SNR distribution of the cosine schedule (`edm/cos`).
    EdmCos,
}

impl Formulation {
    /// The forward path.
    pub fn path(self) -> Path {
        match self {
            Self::EpsLinear | Self::VLinear => Path::LdmLinear,
            Self::EpsCos | Self::VCos => Path::Cosine,
            Self::Rf | Self::RfMode { .. } | Self::RfLogNorm { .. } | Self::RfCosMap => {
                Path::Linear
            }
            Self::Edm { .. } | Self::EdmRf | Self::EdmCos => Path::VarianceExploding,
        }
    }

    /// The training timestep distribution over the path's native time.
    pub fn timesteps(self) -> TimestepDistribution {
        use TimestepDistribution as T;
        match self {
            Self::EpsLinear | Self::VLinear => T::DiscreteUniform,
            Self::EpsCos | Self::VCos | Self::Rf | Self::EdmRf => T::Uniform,
            Self::RfMode { scale } => T::Mode { scale },
            Self::RfLogNorm { mean, std } => T::LogitNormal { mean, std },
            // In EDM native time t = sigma/(1+sigma), sigma = tan(pi u/2) is exactly CosMap.
            Self::RfCosMap | Self::EdmCos => T::CosMap,
            Self::Edm { p_mean, p_std } => T::EdmLogNormal { p_mean, p_std },
        }
    }

    /// What the network predicts.
    pub fn parameterisation(self) -> Parameterisation {
        match self {
            Self::EpsLinear | Self::EpsCos => Parameterisation::Epsilon,
            Self::VLinear | Self::VCos => Parameterisation::VpVelocity,
            Self::Rf | Self::RfMode { .. } | Self::RfLogNorm { .. } | Self::RfCosMap => {
                Parameterisation::RfVelocity
            }
            Self::Edm { .. } | Self::EdmRf | Self::EdmCos => Parameterisation::EdmPreconditioned {
                sigma_data: EDM_SIGMA_DATA,
            },
        }
    }

    /// The per-sample loss weight.
    pub fn loss_weight(self) -> LossWeight {
        match self.parameterisation() {
            Parameterisation::EdmPreconditioned { sigma_data } => {
                LossWeight::EdmLambda { sigma_data }
            }
            _ => LossWeight::Unit,
        }
    }

    /// Checks the parameters.
    pub fn validate(self) -> Result<Self> {
        self.timesteps().validate()?;
        Ok(self)
    }

    /// The path's level at native time t.
    pub fn level(self, t: f64) -> NoiseLevel {
        self.path().level(t)
    }

    /// The path's level at equal-SNR RF time `t_eq`.
    pub fn level_at_t_eq(self, t_eq: f64) -> NoiseLevel {
        self.path().level(self.path().t_from_t_eq(t_eq))
    }

    /// Native training time after an optional shift (applied to `t_eq`, see [`crate::shift`]).
    pub fn shifted_time(self, t: f64, shift: Option<Shift>) -> f64 {
        match shift {
            None => t,
            Some(s) => {
                let path = self.path();
                path.t_from_t_eq(s.apply(path.level(t).t_eq))
            }
        }
    }

    /// Network time input at a level: `1000 · t_eq`.
    ///
    /// Why t_eq: it is a function of the log-SNR only, so every family conditions on the same
    /// function of SNR (and a backbone is interchangeable between families); for rf it is `1000 t`,
    /// exactly SD3's input. EDM's own `c_noise = ln(sigma)/4 = logit(t_eq)/4` carries the same
    /// information; we use the common input for EDM too.
    pub fn time_input(self, level: &NoiseLevel) -> f64 {
        TIME_INPUT_SCALE * level.t_eq
    }

    /// The range of `t_eq` at which the training loss is finite, for validation at fixed
    /// levels: the sampling range, and for the EDM family not below EDM's `sigma_min = 0.002`
    /// (`t_eq = sigma / (1 + sigma)`): at `sigma = 0` its weight `(sigma^2 + sd^2)/(sigma sd)^2`
    /// is infinite and `c_out = 0`, so the loss is 0 x inf.
    pub fn validation_t_eq_range(self) -> (f64, f64) {
        let (lo, hi) = self.sampling_t_eq_range();
        match self {
            Self::Edm { .. } | Self::EdmRf | Self::EdmCos => {
                (lo.max(EDM_SIGMA_MIN / (1.0 + EDM_SIGMA_MIN)), hi)
            }
            _ => (lo, hi),
        }
    }

    /// The range of `t_eq` at which the sampler evaluates the network; times outside it are
    /// clamped to it. The LDM schedule only covers its 1000 trained levels (`a(1) ≈ 0.068`);
    /// eps-prediction is singular at pure noise and EDM's sigma is infinite there.
    pub fn sampling_t_eq_range(self) -> (f64, f64) {
        const NEAR_ONE: f64 = 1.0 - 1e-4;
        match self {
            Self::EpsLinear | Self::VLinear => {
                let l = ldm_lambdas();
                (sigmoid(-l[0] / 2.0), sigmoid(-l[LDM_STEPS - 1] / 2.0))
            }
            Self::EpsCos | Self::Edm { .. } | Self::EdmRf | Self::EdmCos => (0.0, NEAR_ONE),
            _ => (0.0, 1.0),
        }
    }
}
