//! Run IDs: a function of the resolved config, so the same config is always the same run (and a
//! sweep rerun finds its finished runs) whatever the file it came from.
//!
//! Only settings that differ from flowscale's defaults enter the hash (plus the required keys):
//! a later flowscale version that adds a config key with a default keeps every existing run's ID.
//! `run.name` and `run.out_dir` never count: where a run lives is not what it is.

use crate::error::{Result, StudyError};
use flowscale_train::config::RunConfig;
use std::collections::BTreeMap;
use toml::{Table, Value};

fn err(message: impl Into<String>) -> StudyError {
    StudyError::invalid("run config", message)
}

fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_owned(), other.to_string());
        }
    }
}

fn get<'a>(t: &'a Table, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let v = t.get(*first)?;
    if rest.is_empty() {
        Some(v)
    } else {
        get(v.as_table()?, rest)
    }
}

fn insert(t: &mut Table, path: &[&str], value: Value) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        t.insert((*first).to_owned(), value);
    } else if let Value::Table(sub) = t
        .entry((*first).to_owned())
        .or_insert_with(|| Value::Table(Table::new()))
    {
        insert(sub, rest, value);
    }
}

/// The config with every optional key at its default and the required keys taken from `full`:
/// deserialise, add the field serde reports missing, repeat.
/// Also returns the required keys (they always enter the hash).
fn defaults_for(full: &Table) -> Result<(Table, Vec<String>)> {
    let mut minimal = Table::new();
    let mut required = Vec::new();
    for _ in 0..256 {
        let attempt: std::result::Result<RunConfig, _> =
            serde_path_to_error::deserialize(Value::Table(minimal.clone()));
        let e = match attempt {
            Ok(c) => {
                let table = Table::try_from(&c).map_err(|e| err(e.to_string()))?;
                return Ok((table, required));
            }
            Err(e) => e,
        };
        let message = e.inner().to_string();
        let field = message
            .strip_prefix("missing field `")
            .and_then(|m| m.split('`').next())
            .ok_or_else(|| err(format!("defaults of the run config: {message}")))?;
        let parent = e.path().to_string();
        let mut path: Vec<&str> = if parent == "." {
            Vec::new()
        } else {
            parent.split('.').collect()
        };
        path.push(field);
        let value = match get(full, &path) {
            // A missing section: start it empty, so its own defaults apply.
            Some(Value::Table(_)) => Value::Table(Table::new()),
            Some(v) => {
                required.push(path.join("."));
                v.clone()
            }
            None => return Err(err(format!("required key {} missing", path.join(".")))),
        };
        insert(&mut minimal, &path, value);
    }
    Err(err("defaults of the run config: too many required keys"))
}

/// `r` + 12 hex digits of FNV-1a 64 over the settings that differ from the defaults.
pub fn run_id(config: &RunConfig) -> Result<String> {
    let mut c = config.clone();
    c.run.name = String::new();
    c.run.out_dir = String::new();
    let full = Table::try_from(&c).map_err(|e| err(e.to_string()))?;
    let (defaults, required) = defaults_for(&full)?;
    let (mut ours, mut base) = (BTreeMap::new(), BTreeMap::new());
    flatten("", &Value::Table(full), &mut ours);
    flatten("", &Value::Table(defaults), &mut base);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, v) in &ours {
        if base.get(k) == Some(v) && !required.contains(k) {
            continue;
        }
        for b in k.bytes().chain([b'=']).chain(v.bytes()).chain([b'\n']) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    Ok(format!("r{:012x}", h >> 16))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowscale_core::config::load_str;
    use std::path::Path;

    const BASE: &str = "[run]\nname = \"x\"\n[data]\ndataset = \"fashion-mnist\"\nresolution = 32\n[model]\ndepth = 2\n[train]\nsteps = 10\nbatch_size = 4\n";

    fn cfg(extra: &[&str]) -> RunConfig {
        let o: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        load_str(BASE, Path::new("t.toml"), &o).unwrap()
    }

    #[test]
    fn explicit_defaults_do_not_change_the_id_and_real_changes_do() {
        let plain = run_id(&cfg(&[])).unwrap();
        // The same settings spelled out (these are the defaults) give the same ID.
        let spelled = run_id(&cfg(&["optim.weight_decay=0.0", "run.seed=0"])).unwrap();
        assert_eq!(plain, spelled);
        // Name and folder do not count.
        let moved = run_id(&cfg(&["run.name=\"y\"", "run.out_dir=\"elsewhere\""])).unwrap();
        assert_eq!(plain, moved);
        // Any real difference does.
        for change in [
            "optim.lr=0.002",
            "run.seed=1",
            "model.depth=3",
            "train.steps=11",
        ] {
            assert_ne!(plain, run_id(&cfg(&[change])).unwrap(), "{change}");
        }
    }
}
