//! Minimal CSV (RFC 4180): comma-separated, fields quoted with `"` when they contain a comma,
//! quote or newline, quotes doubled inside quoted fields. Enough for result tables; no dialects.

use crate::error::{EvalError, Result};
use std::collections::BTreeMap;

/// One field, quoted if needed.
pub fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// One line (with `\n`) from fields.
pub fn line<S: AsRef<str>>(fields: &[S]) -> String {
    let mut s = fields
        .iter()
        .map(|f| field(f.as_ref()))
        .collect::<Vec<_>>()
        .join(",");
    s.push('\n');
    s
}

/// Parses CSV text into records of fields. `what` names the source in errors.
pub fn parse(text: &str, what: &str) -> Result<Vec<Vec<String>>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut fieldbuf = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    let mut line_no = 1;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    fieldbuf.push('"');
                }
                '"' => quoted = false,
                _ => {
                    if c == '\n' {
                        line_no += 1;
                    }
                    fieldbuf.push(c)
                }
            }
            continue;
        }
        match c {
            '"' if fieldbuf.is_empty() => quoted = true,
            ',' => record.push(std::mem::take(&mut fieldbuf)),
            '\r' => {}
            '\n' => {
                record.push(std::mem::take(&mut fieldbuf));
                if !(record.len() == 1 && record[0].is_empty()) {
                    records.push(std::mem::take(&mut record));
                }
                record.clear();
                line_no += 1;
            }
            _ => fieldbuf.push(c),
        }
    }
    if quoted {
        return Err(EvalError::Invalid(format!(
            "{what}: unterminated quoted field at line {line_no}"
        )));
    }
    if !fieldbuf.is_empty() || !record.is_empty() {
        record.push(fieldbuf);
        records.push(record);
    }
    Ok(records)
}

/// Parses CSV with a header into rows keyed by column name; every row must have the header's
/// width.
pub fn parse_with_header(text: &str, what: &str) -> Result<Vec<BTreeMap<String, String>>> {
    let mut records = parse(text, what)?.into_iter();
    let header = records
        .next()
        .ok_or_else(|| EvalError::Invalid(format!("{what}: empty CSV (no header)")))?;
    let mut rows = Vec::new();
    for (i, r) in records.enumerate() {
        if r.len() != header.len() {
            return Err(EvalError::Invalid(format!(
                "{what}: row {} has {} fields, the header has {}",
                i + 2,
                r.len(),
                header.len()
            )));
        }
        rows.push(header.iter().cloned().zip(r).collect());
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_fields_round_trip() {
        let fields = ["rf/lognorm(0.00, 1.00)", "say \"hi\"", "plain", ""];
        let text = format!("{}{}", line(&["a", "b", "c", "d"]), line(&fields));
        let rows = parse_with_header(&text, "t").unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["a"], fields[0]);
        assert_eq!(rows[0]["b"], fields[1]);
        assert_eq!(rows[0]["d"], "");
    }

    #[test]
    fn ragged_rows_and_open_quotes_are_errors() {
        let e = parse_with_header("a,b\n1\n", "x.csv")
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.csv: row 2 has 1 fields"), "{e}");
        let e = parse("a,\"b\n", "y.csv").unwrap_err().to_string();
        assert!(e.contains("unterminated"), "{e}");
    }
}
