//! `checksums.json` of a checkpoint folder: the length and CRC-32C of every file written before
//! `state.json`, recorded at save and checked at load, so a flipped byte or a truncated file is
//! found when the checkpoint is read instead of training on (or exporting) damaged weights.
//! CRC-32C rather than SHA-256: it detects accidental damage (all burst errors up to 32 bits, any
//! odd number of flipped bits) at memory speed, and checkpoints of large models are tens of GB;
//! it is no defence against deliberate tampering, which is not the threat here.

use crate::error::{Result, TrainError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

pub const CHECKSUMS_FILE: &str = "checksums.json";

/// What was written: the file's length and CRC-32C.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSum {
    pub bytes: u64,
    /// Lowercase hex.
    pub crc32c: String,
}

/// Length and CRC-32C of a file, streamed.
pub fn file_sum(path: &Path) -> Result<FileSum> {
    let mut file = std::fs::File::open(path).map_err(|e| TrainError::io(path, e))?;
    let mut buf = vec![0u8; 1 << 22];
    let (mut crc, mut bytes) = (0u32, 0u64);
    loop {
        let n = file.read(&mut buf).map_err(|e| TrainError::io(path, e))?;
        if n == 0 {
            break;
        }
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        bytes += n as u64;
    }
    Ok(FileSum {
        bytes,
        crc32c: format!("{crc:08x}"),
    })
}

/// Records the sums of `files` (names inside `dir`) in `dir/checksums.json`.
pub fn write(dir: &Path, files: &[String]) -> Result<()> {
    let mut sums = BTreeMap::new();
    for name in files {
        sums.insert(name.clone(), file_sum(&dir.join(name))?);
    }
    let json = serde_json::to_vec_pretty(&sums).expect("checksums serialise");
    Ok(flowscale_core::write_atomic(
        &dir.join(CHECKSUMS_FILE),
        &json,
    )?)
}

/// Checks every file `dir/checksums.json` lists. Checkpoints written before checksums existed
/// have no such file and are not checked.
pub fn verify(dir: &Path) -> Result<()> {
    let path = dir.join(CHECKSUMS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(TrainError::io(&path, e)),
    };
    let sums: BTreeMap<String, FileSum> =
        serde_json::from_str(&text).map_err(|e| TrainError::corrupt(&path, e))?;
    for (name, recorded) in &sums {
        if name.contains('/') || name.contains("..") {
            return Err(TrainError::corrupt(
                &path,
                format!("lists a path outside the folder: {name}"),
            ));
        }
        let file = dir.join(name);
        let found = file_sum(&file)?;
        if &found != recorded {
            return Err(TrainError::corrupt(
                &file,
                format!(
                    "damaged since it was written: {} bytes with CRC-32C {}, {} recorded {} bytes \
                     with CRC-32C {}",
                    found.bytes, found.crc32c, CHECKSUMS_FILE, recorded.bytes, recorded.crc32c
                ),
            ));
        }
    }
    Ok(())
}
