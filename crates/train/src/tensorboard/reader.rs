//! Reads the events our writer produces (scalars and images), checking every CRC.

use super::proto::{fields, Field};
use super::record::unframe;
use crate::error::{Result, TrainError};
use std::path::Path;

#[derive(Debug, Clone, PartialEq)]
pub enum EventValue {
    Scalar(f32),
    /// PNG bytes with height, width, channels.
    Image {
        png: Vec<u8>,
        height: u32,
        width: u32,
        channels: u32,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub wall_time: f64,
    pub step: i64,
    pub tag: String,
    pub value: EventValue,
}

/// All summary values of an event file, in order (the file-version record is checked, not
/// returned).
pub fn read_events(path: &Path) -> Result<Vec<Event>> {
    let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
    let bad = |m: String| TrainError::corrupt(path, m);
    let records = unframe(&bytes).map_err(bad)?;
    let mut out = vec![];
    for (i, rec) in records.iter().enumerate() {
        let (mut wall, mut step) = (0.0, 0);
        let mut summary = None;
        let mut version = None;
        for f in fields(rec).map_err(bad)? {
            match f {
                Field::Fixed64(1, b) => wall = f64::from_le_bytes(b),
                Field::Varint(2, v) => step = v as i64,
                Field::Bytes(3, s) => version = Some(String::from_utf8_lossy(s).into_owned()),
                Field::Bytes(5, s) => summary = Some(s),
                _ => {}
            }
        }
        if i == 0 && version.as_deref() != Some("brain.Event:2") {
            return Err(bad(format!(
                "first record is not brain.Event:2 ({version:?})"
            )));
        }
        let Some(summary) = summary else { continue };
        for f in fields(summary).map_err(bad)? {
            let Field::Bytes(1, value) = f else { continue };
            let (mut tag, mut v) = (String::new(), None);
            for g in fields(value).map_err(bad)? {
                match g {
                    Field::Bytes(1, t) => tag = String::from_utf8_lossy(t).into_owned(),
                    Field::Fixed32(2, b) => v = Some(EventValue::Scalar(f32::from_le_bytes(b))),
                    Field::Bytes(4, img) => {
                        let (mut h, mut w, mut c, mut png) = (0, 0, 0, vec![]);
                        for k in fields(img).map_err(bad)? {
                            match k {
                                Field::Varint(1, x) => h = x as u32,
                                Field::Varint(2, x) => w = x as u32,
                                Field::Varint(3, x) => c = x as u32,
                                Field::Bytes(4, p) => png = p.to_vec(),
                                _ => {}
                            }
                        }
                        v = Some(EventValue::Image {
                            png,
                            height: h,
                            width: w,
                            channels: c,
                        });
                    }
                    _ => {}
                }
            }
            if let Some(value) = v {
                out.push(Event {
                    wall_time: wall,
                    step,
                    tag,
                    value,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensorboard::EventWriter;

    #[test]
    fn round_trips_scalars_and_images_and_detects_corruption() {
        let tmp = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(tmp.path()).unwrap();
        w.scalar("train/loss", 0.25, 10).unwrap();
        w.scalar("train/loss", 0.125, 20).unwrap();
        w.image_png("samples/grid", b"\x89PNG fake", 4, 6, 1, 20)
            .unwrap();
        w.flush().unwrap();
        let path = w.path().to_path_buf();
        let ev = read_events(&path).unwrap();
        assert_eq!(ev.len(), 3);
        assert_eq!((ev[1].step, &ev[1].tag), (20, &"train/loss".to_string()));
        assert_eq!(ev[1].value, EventValue::Scalar(0.125));
        assert!(
            matches!(&ev[2].value, EventValue::Image { height: 4, width: 6, channels: 1, png } if png == b"\x89PNG fake")
        );
        // Flip one byte inside the second record: the CRC check names the file.
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 30] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let err = read_events(&path).unwrap_err().to_string();
        assert!(
            err.contains("CRC") && err.contains("events.out.tfevents"),
            "{err}"
        );
    }
}
