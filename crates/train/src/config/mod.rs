//! Run configuration: TOML files parsed into serde structs that reject unknown keys, overridable
//! with `--set key.path=value`, validated with errors that name the file, the key and what is
//! allowed. [`load`] is generic so every config kind (runs, evaluations, sweeps) shares it.

mod distributed;
mod error;
mod hooks;
mod load;
mod overrides;
mod run;
mod validate;

pub use distributed::{DistBackend, GradReduceDtype};
pub use error::{ConfigError, Problem};
pub use hooks::{
    CheckpointConfig, ConditioningConfig, ConditioningProviderKind, LoggingConfig, NonFinitePolicy,
    SamplesConfig, ValidationConfig,
};
pub use load::{load, load_str, to_toml_string};
pub use overrides::{apply_override, parse_override, Override};
pub use run::{
    DataConfig, DatasetKind, DeviceChoice, EmaConfig, FormulationConfig, LrSchedule, ModelConfig,
    OptimConfig, Precision, RunConfig, RunSection, TrainConfig,
};
pub use validate::{Validate, Validator};
