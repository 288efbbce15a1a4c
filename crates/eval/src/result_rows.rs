//! Reading result tables for ranking: CSV with a header, or JSON with a `rows` array of flat
//! objects (what `flowscale eval` writes as `results.json`), or a bare JSON array of them.

use crate::error::{EvalError, Result};
use crate::rank::Row;
use std::path::Path;

/// The rows of one results file.
pub fn read_rows(path: &Path) -> Result<Vec<Row>> {
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
    let what = path.display().to_string();
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if !is_json {
        return crate::csv::parse_with_header(&text, &what);
    }
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| EvalError::Invalid(format!("{what}: {e}")))?;
    rows_of_json(&value, &what)
}

/// A results JSON file, parsed (for readers that take several things from one file).
pub fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| EvalError::Invalid(format!("{}: {e}", path.display())))
}

/// The rows of a parsed results JSON (`what` names it in errors): its `rows` array, or the
/// value itself when it is an array.
pub fn rows_of_json(value: &serde_json::Value, what: &str) -> Result<Vec<Row>> {
    let rows = match value {
        serde_json::Value::Array(a) => a,
        serde_json::Value::Object(o) => o
            .get("rows")
            .and_then(|r| r.as_array())
            .ok_or_else(|| EvalError::Invalid(format!("{what}: no `rows` array")))?,
        _ => {
            return Err(EvalError::Invalid(format!(
                "{what}: not a JSON object or array"
            )))
        }
    };
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            let obj = r
                .as_object()
                .ok_or_else(|| EvalError::Invalid(format!("{what}: rows[{i}] is not an object")))?;
            Ok(obj
                .iter()
                .map(|(k, v)| {
                    let s = match v {
                        serde_json::Value::String(s) => s.clone(),
                        serde_json::Value::Null => String::new(),
                        other => other.to_string(),
                    };
                    (k.clone(), s)
                })
                .collect())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_rows_become_strings() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.json");
        std::fs::write(&p, r#"{"rows": [{"run": "a", "value": 0.25, "n": 16}]}"#).unwrap();
        let rows = read_rows(&p).unwrap();
        assert_eq!(rows[0]["value"], "0.25");
        assert_eq!(rows[0]["n"], "16");
        std::fs::write(&p, r#"{"other": 1}"#).unwrap();
        let e = read_rows(&p).unwrap_err().to_string();
        assert!(e.contains("r.json: no `rows` array"), "{e}");
    }
}
