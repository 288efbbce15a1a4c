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
    /// The dotted key, a part that holds a dot quoted (`axes."model.depth"`), as validators
    /// spell the keys of tables whose own keys are dotted.
    pub fn key(&self) -> String {
        self.path
            .iter()
            .map(|p| {
                if p.contains('.') {
                    format!("\"{p}\"")
                } else {
                    p.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(".")
    }
}

/// The parts of a dotted key. A key with quotes is read with TOML's dotted-key rules, so a
/// part may itself hold dots (`set."train.steps"` in a sweep file); `None` when it is not a
/// valid TOML key.
fn key_parts(key: &str) -> Option<Vec<String>> {
    if !key.contains(['"', '\'']) {
        return Some(key.split('.').map(|p| p.trim().to_owned()).collect());
    }
    let table: Table = toml::from_str(&format!("{key} = 0")).ok()?;
    let mut parts = Vec::new();
    let mut current = &table;
    loop {
        let (part, value) = current.iter().next()?;
        parts.push(part.clone());
        match value {
            Value::Table(t) => current = t,
            _ => return Some(parts),
        }
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
    let path = key_parts(key).unwrap_or_default();
    if key.is_empty() || path.is_empty() || path.iter().any(String::is_empty) {
        return Err(bad(arg, "the key must be a dotted path like optim.lr"));
    }
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(bad(arg, format!("no value given for `{key}`")));
    }
    // A line break would end the TOML value early and what follows would be read as other keys,
    // silently dropped from this one.
    if raw.contains(['\n', '\r']) {
        return Err(bad(
            arg,
            format!("the value of `{key}` spans several lines; give it on one line"),
        ));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_parts_may_hold_dots() {
        let ov = parse_override(r#"set."train.steps"=50"#).unwrap();
        assert_eq!(ov.path, ["set", "train.steps"]);
        assert_eq!(ov.key(), r#"set."train.steps""#);
        let mut table = Table::new();
        apply_override(&mut table, &ov).unwrap();
        assert_eq!(table["set"]["train.steps"], Value::Integer(50));
        // Unquoted keys split on every dot, as before.
        assert_eq!(parse_override("optim.lr=1").unwrap().path, ["optim", "lr"]);
        for bad_key in [r#"set."train.steps=1"#, r#"set.""=1"#, "a..b=1"] {
            assert!(parse_override(bad_key).is_err(), "{bad_key}");
        }
    }

    #[test]
    fn a_value_over_several_lines_is_refused_not_cut() {
        let e = parse_override("run.name=a\nb = 2").unwrap_err().to_string();
        assert!(e.contains("run.name") && e.contains("several lines"), "{e}");
        assert!(parse_override("optim.lr=3e-4").is_ok());
    }
}
