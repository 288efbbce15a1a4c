//! `flowscale-formulations`: noise formulations of the SD3 study (issue #3).
//!
//! A formulation is a composition of orthogonal parts, each explicit and tested:
//! the path ([`Path`]), the timestep distribution ([`TimestepDistribution`]), the
//! parameterisation and training target ([`Parameterisation`]), the loss weight ([`LossWeight`]),
//! the resolution shift ([`Shift`], passed separately) and the discretisation ([`sampling`] in
//! the RF frame, [`native_frame`] in each formulation's own; [`SamplerFrame`] selects).
//! [`registry`] lists the 61 formulations of the study; [`Formulation::parse`] and `Display`
//! convert names.

pub mod analysis;
pub mod edm;
pub mod error;
pub mod formulation;
pub mod frame;
pub mod integrator;
pub mod name;
pub mod native_frame;
pub mod native_schedule;
pub mod parameterisation;
pub mod path;
pub mod registry;
pub mod sampling;
pub mod shift;
pub mod special;
pub mod time_input;
pub mod timesteps;
pub mod training;
pub mod weighting;

pub use analysis::{table, write_csv, TableRow};
pub use edm::{EdmPreconditioning, EDM_RHO, EDM_SIGMA_MAX, EDM_SIGMA_MIN};
pub use error::{FormulationError, Result};
pub use flowscale_core::{with_torch_seed, FlowRng};
pub use formulation::{Formulation, TIME_INPUT_SCALE};
pub use frame::SamplerFrame;
pub use native_frame::sample_native;
pub use native_schedule::native_schedule;
pub use parameterisation::{Parameterisation, EDM_SIGMA_DATA};
pub use path::{NoiseLevel, Path};
pub use registry::registry;
pub use sampling::{cfg, guided, sample, sd3_sigmas, uniform_schedule, Predictions, SamplerMethod};
pub use shift::Shift;
pub use time_input::NativeTimeInput;
pub use timesteps::TimestepDistribution;
pub use training::{weighted_per_sample_loss, TrainingBatch};
pub use weighting::{effective_weight, LossWeight};
