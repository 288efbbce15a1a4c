//! The config dialect every flowscale config file speaks (runs, precompute, sweeps, evaluations,
//! text encoders): TOML parsed into serde structs that reject unknown keys, overridable with
//! `--set key.path=value`, validated so that every problem is reported at once with the file,
//! the dotted key and what is allowed, and written back fully resolved.

mod error;
mod load;
mod overrides;
mod validate;

pub use error::{ConfigError, Problem};
pub use load::{load, load_str, to_toml_string};
pub use overrides::{apply_override, parse_override, Override};
pub use validate::{Validate, Validator};
