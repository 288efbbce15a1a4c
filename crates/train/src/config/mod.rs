//! Run configuration: the `[run]`, `[data]`, `[model]`, ... sections of a run's TOML file in
//! flowscale's config dialect (`flowscale_core::config`: unknown keys rejected, `--set`
//! overrides, every problem reported at once with file, dotted key and what is allowed).

mod distributed;
mod hooks;
mod init;
mod posthoc_ema;
mod run;
mod shift;
mod weight_choice;

pub use distributed::{DistBackend, GradReduceDtype};
pub use flowscale_core::config::{
    apply_override, load, load_str, parse_override, to_toml_string, ConfigError, Override, Problem,
    Validate, Validator,
};
pub use hooks::{
    CheckpointConfig, ConditioningConfig, ConditioningProviderKind, LoggingConfig, NonFinitePolicy,
    SamplesConfig, TextFrom, ValidationConfig, ValidationGrid,
};
pub use init::InitConfig;
pub use posthoc_ema::PosthocEmaConfig;
pub use run::{
    DataConfig, DatasetKind, DeviceChoice, EmaConfig, FormulationConfig, LatentNormalization,
    LrSchedule, ModelConfig, OptimConfig, PositionGridKind, Precision, RunConfig, RunSection,
    TimeInputKind, TrainConfig, WidthRule,
};
pub use shift::{ShiftSetting, DEFAULT_SHIFT_BASE_RESOLUTION};
pub use weight_choice::WeightChoice;
