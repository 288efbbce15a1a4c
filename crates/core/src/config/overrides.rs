//! `--set key.path=value` overrides, applied to the parsed TOML before it is typed, so an override
//! is checked exactly like the same value written in the file.

use toml::{Table, Value};

use super::ConfigError;

/// One parsed `--set` argument.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// The argument as the user wrote it (for error messages).
    pub arg: String,
    /// The dotted key split into its parts.
    pub path: Vec<String>,
    pub value: Value,
}

impl Override {
    pub fn key(&self) -> String {
        self.path.join(".")
    }
}

fn bad(arg: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Override {
        arg: arg.to_owned(),
        message: message.into(),
    }
}

/// Parse `key.path=value`. The value is read as a TOML value (`3e-4`, `true`, `[0.9, 0.99]`,
/// `"text"`); anything that is not valid TOML is taken as a bare string (`name=rf`).
pub fn parse_override(arg: &str) -> Result<Override, ConfigError> {
    let (key, raw) = arg
        .split_once('=')
        .ok_or_else(|| bad(arg, "expected KEY=VALUE, e.g. optim.lr=3e-4"))?;
    let key = key.trim();
    let path: Vec<String> = key.split('.').map(|p| p.trim().to_owned()).collect();
    if key.is_empty() || path.iter().any(String::is_empty) {
        return Err(bad(arg, "the key must be a dotted path like optim.lr"));
    }
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(bad(arg, format!("no value given for `{key}`")));
    }
    let value = match toml::from_str::<Table>(&format!("v = {raw}")) {
        Ok(mut table) => table.remove("v").unwrap_or(Value::String(raw.to_owned())),
        Err(_) => Value::String(raw.to_owned()),
    };
    Ok(Override {
        arg: arg.to_owned(),
        path,
        value,
    })
}

/// Set the override's value in `table`, creating missing sections. A key that runs through a
/// non-table value is an error; unknown keys are left for the typed parse to reject by name.
pub fn apply_override(table: &mut Table, ov: &Override) -> Result<(), ConfigError> {
    let (last, parents) = ov
        .path
        .split_last()
        .ok_or_else(|| bad(&ov.arg, "empty key"))?;
    let mut current = table;
    for (depth, part) in parents.iter().enumerate() {
        let entry = current
            .entry(part.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        current = match entry {
            Value::Table(t) => t,
            other => {
                return Err(bad(
                    &ov.arg,
                    format!(
                        "`{}` is a {}, not a section, so `{}` cannot be set",
                        ov.path[..=depth].join("."),
                        other.type_str(),
                        ov.key()
                    ),
                ))
            }
        };
    }
    current.insert(last.clone(), ov.value.clone());
    Ok(())
}
