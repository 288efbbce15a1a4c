//! Reading, overriding, typing and validating a config file.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;
use toml::Table;

use super::{apply_override, parse_override, ConfigError, Problem, Validate, Validator};

/// Load `path`, apply `--set` overrides in order, parse into `T` (unknown keys rejected) and
/// validate. Errors name the file, the key and what is allowed; a key that came from `--set`
/// says so.
pub fn load<T>(path: &Path, overrides: &[String]) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Validate,
{
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    load_str(&text, path, overrides)
}

/// [`load`] for text already in memory; `path` is only used in messages.
pub fn load_str<T>(text: &str, path: &Path, overrides: &[String]) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Validate,
{
    let mut table: Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        path: path.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })?;
    let parsed = overrides
        .iter()
        .map(|arg| parse_override(arg))
        .collect::<Result<Vec<_>, _>>()?;
    for ov in &parsed {
        apply_override(&mut table, ov)?;
    }
    let from_override = |key: &str| parsed.iter().any(|o| o.key() == key);

    let config: T = serde_path_to_error::deserialize(table).map_err(|err| {
        // serde_path_to_error's path already ends in the offending key, unknown fields included.
        let mut key = err.path().to_string();
        if key == "." {
            key.clear();
        }
        let mut message = err.inner().to_string();
        if from_override(&key) {
            message.push_str(" (set with --set)");
        }
        ConfigError::Schema {
            path: path.to_owned(),
            problem: Problem { key, message },
        }
    })?;

    let mut v = Validator::new();
    config.validate(&mut v);
    let mut problems = v.into_problems();
    if problems.is_empty() {
        return Ok(config);
    }
    for p in &mut problems {
        if from_override(&p.key) {
            p.message.push_str(" (set with --set)");
        }
    }
    Err(ConfigError::Invalid {
        path: path.to_owned(),
        problems,
    })
}

/// The fully resolved config (every default filled in) as TOML: what a run records.
pub fn to_toml_string<T: Serialize>(config: &T) -> Result<String, toml::ser::Error> {
    toml::to_string(config)
}
