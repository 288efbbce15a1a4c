//! `metrics.jsonl`: one JSON object per line, appended and flushed per record so a crashed run
//! keeps everything it logged. On resume, lines from steps after the checkpoint are dropped, so
//! the file reads as one uninterrupted run.

use crate::error::Result;
use crate::run_dir::{io_error, write_atomic};
use serde_json::{Map, Value};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct MetricsWriter {
    path: PathBuf,
    file: std::fs::File,
}

impl MetricsWriter {
    /// Opens for appending; with `resume_step`, first removes lines whose `step` is greater.
    /// Without one the run starts afresh: lines an earlier attempt wrote before it was killed
    /// (before its first checkpoint) are dropped, not continued.
    pub fn open(path: &Path, resume_step: Option<u64>) -> Result<Self> {
        if resume_step.is_none() && path.exists() {
            write_atomic(path, b"")?;
        }
        if let Some(step) = resume_step {
            if path.exists() {
                let text = std::fs::read_to_string(path).map_err(|e| io_error(path, e))?;
                let kept: String = text
                    .lines()
                    .filter(|l| {
                        serde_json::from_str::<Value>(l)
                            .ok()
                            .and_then(|v| v.get("step").and_then(Value::as_u64))
                            .is_some_and(|s| s <= step)
                    })
                    .map(|l| format!("{l}\n"))
                    .collect();
                write_atomic(path, kept.as_bytes())?;
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| io_error(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends `{"step": step, "kind": kind, ...fields}`.
    pub fn write(&mut self, step: u64, kind: &str, fields: Map<String, Value>) -> Result<()> {
        let mut obj = Map::new();
        obj.insert("step".into(), step.into());
        obj.insert("kind".into(), kind.into());
        obj.extend(fields);
        let line = format!("{}\n", Value::Object(obj));
        self.file
            .write_all(line.as_bytes())
            .and_then(|_| self.file.flush())
            .map_err(|e| io_error(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resume_drops_lines_after_the_checkpoint() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("metrics.jsonl");
        let mut m = MetricsWriter::open(&path, None).unwrap();
        for step in [10, 20, 30] {
            let f = json!({"loss": step as f64 / 100.0});
            m.write(step, "train", f.as_object().unwrap().clone())
                .unwrap();
        }
        drop(m);
        let mut m = MetricsWriter::open(&path, Some(20)).unwrap();
        m.write(30, "train", Map::new()).unwrap();
        let steps: Vec<u64> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["step"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(steps, vec![10, 20, 30]);
    }
}
