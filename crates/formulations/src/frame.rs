//! Which ODE a sampler discretises, and on which schedule (docs/protocol.md section 7).

use crate::error::{FormulationError, Result};
use crate::formulation::Formulation;
use crate::integrator::SamplerMethod;
use crate::native_frame::sample_native;
use crate::native_schedule::native_schedule;
use crate::sampling::{sample, sd3_sigmas};
use serde::{Deserialize, Serialize};
use std::fmt;
use tch::Tensor;

/// The sampler frame. Config keys spell it in lowercase (`rf`, `native`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SamplerFrame {
    /// Every formulation on the RF path in RF time on SD3's sigmas ([`crate::sampling`]): one
    /// ODE and one schedule for all, so samples differ only by training. The paper's protocol.
    #[default]
    Rf,
    /// Each formulation's own probability-flow ODE in its native time on its native schedule
    /// ([`crate::native_frame`], [`crate::native_schedule()`]).
    Native,
}

impl SamplerFrame {
    /// Every frame, in the order of the docs.
    pub const ALL: [SamplerFrame; 2] = [SamplerFrame::Rf, SamplerFrame::Native];

    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rf => "rf",
            Self::Native => "native",
        }
    }

    /// Parses a config spelling; anything else is an error listing the allowed values.
    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| {
                FormulationError::InvalidParameter(format!(
                    "unknown sampler frame {name:?}: expected \"rf\" or \"native\""
                ))
            })
    }

    /// The frame's schedule for `steps` steps at resolution shift `shift`: N + 1 decreasing
    /// times ending at 0 (RF times for `Rf`, native ODE times for `Native`).
    pub fn schedule(self, formulation: Formulation, steps: usize, shift: f64) -> Result<Vec<f64>> {
        match self {
            Self::Rf => sd3_sigmas(steps, shift),
            Self::Native => native_schedule(formulation, steps, shift),
        }
    }

    /// Samples from standard-normal `noise` through `schedule` (from [`Self::schedule`] of the
    /// same frame). The first error of `model` comes back as is.
    pub fn sample<F, E>(
        self,
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
        match self {
            Self::Rf => sample(formulation, model, noise, schedule, method),
            Self::Native => sample_native(formulation, model, noise, schedule, method),
        }
    }
}

impl fmt::Display for SamplerFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
