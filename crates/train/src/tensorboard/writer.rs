use super::proto::{bytes_field, event_head, key, varint_field, WIRE_32};
use super::record::frame;
use crate::error::{Result, TrainError};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Appends events to `events.out.tfevents.<secs>.<host>.<pid>` in a log directory. Every call
/// writes whole records; [`EventWriter::flush`] pushes them to the OS.
#[derive(Debug)]
pub struct EventWriter {
    path: PathBuf,
    file: std::io::BufWriter<File>,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl EventWriter {
    /// A new event file in `dir` (created if needed), starting with the file-version record.
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "localhost".into());
        let path = dir.join(format!(
            "events.out.tfevents.{}.{host}.{}",
            now() as u64,
            std::process::id()
        ));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        let mut w = Self {
            path,
            file: std::io::BufWriter::new(file),
        };
        let mut ev = vec![];
        event_head(now(), 0, &mut ev);
        bytes_field(3, b"brain.Event:2", &mut ev);
        w.write_record(&ev)?;
        w.flush()?;
        Ok(w)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write_record(&mut self, event: &[u8]) -> Result<()> {
        self.file
            .write_all(&frame(event))
            .map_err(|e| io(&self.path, e))
    }

    fn write_summary_value(&mut self, step: i64, value: &[u8]) -> Result<()> {
        let mut summary = vec![];
        bytes_field(1, value, &mut summary);
        let mut ev = vec![];
        event_head(now(), step, &mut ev);
        bytes_field(5, &summary, &mut ev);
        self.write_record(&ev)
    }

    /// A scalar (stored as float32, as TensorBoard's `simple_value`).
    pub fn scalar(&mut self, tag: &str, value: f64, step: i64) -> Result<()> {
        let mut v = vec![];
        bytes_field(1, tag.as_bytes(), &mut v);
        key(2, WIRE_32, &mut v);
        v.extend_from_slice(&(value as f32).to_le_bytes());
        self.write_summary_value(step, &v)
    }

    /// A PNG image; `channels` is 1 (grey), 3 (RGB) or 4 (RGBA), TensorBoard's colorspace.
    pub fn image_png(
        &mut self,
        tag: &str,
        png: &[u8],
        height: u32,
        width: u32,
        channels: u32,
        step: i64,
    ) -> Result<()> {
        let mut img = vec![];
        varint_field(1, u64::from(height), &mut img);
        varint_field(2, u64::from(width), &mut img);
        varint_field(3, u64::from(channels), &mut img);
        bytes_field(4, png, &mut img);
        let mut v = vec![];
        bytes_field(1, tag.as_bytes(), &mut v);
        bytes_field(4, &img, &mut v);
        self.write_summary_value(step, &v)
    }

    pub fn flush(&mut self) -> Result<()> {
        self.file.flush().map_err(|e| io(&self.path, e))
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        let _ = self.file.flush();
    }
}

fn io(path: &Path, e: std::io::Error) -> TrainError {
    TrainError::io(path, e)
}
