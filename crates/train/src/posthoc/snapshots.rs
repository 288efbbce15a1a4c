//! Snapshots of the tracked power-function EMAs, the input of post-hoc reconstruction. Layout
//! inside a run directory:
//!
//! ```text
//! posthoc/
//!   snapshots.json                       the list: std, gamma, step, file, bytes, CRC-32C
//!   std-<std>/step-XXXXXXXXX.safetensors the EMA of std <std> after step XXXXXXXXX
//! ```
//!
//! Each file is written to a temporary name and renamed; the list is rewritten (atomically)
//! after it, so a file the list does not name is ignored and a listed file that is missing,
//! truncated or altered is a named error when it is read.

use super::profile::Profile;
use crate::checkpoint::checksums::{file_sum, FileSum};
use crate::error::{Result, TrainError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::Tensor;

/// `<run>/posthoc`.
pub fn posthoc_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("posthoc")
}

/// `<run>/posthoc/snapshots.json`.
pub fn manifest_path(run_dir: &Path) -> PathBuf {
    posthoc_dir(run_dir).join("snapshots.json")
}

/// The list is one entry per (std, step); a run with a million snapshots stays far below this,
/// and a damaged file claiming more is refused before it is read.
const MAX_MANIFEST_BYTES: u64 = 256 << 20;

/// One stored snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub std: f64,
    pub gamma: f64,
    /// Optimiser steps completed when it was taken.
    pub step: u64,
    /// Path relative to `<run>/posthoc`.
    pub file: String,
    #[serde(flatten)]
    pub sum: FileSum,
}

impl Snapshot {
    /// The profile this snapshot averages with.
    pub fn profile(&self) -> Profile {
        Profile {
            t: self.step as f64,
            gamma: self.gamma,
        }
    }

    /// Reads the snapshot's tensors after checking its length and CRC-32C against the list.
    pub fn load(&self, run_dir: &Path) -> Result<HashMap<String, Tensor>> {
        let path = posthoc_dir(run_dir).join(&self.file);
        if !path.is_file() {
            return Err(TrainError::corrupt(
                &path,
                format!("listed in {} but missing", manifest_path(run_dir).display()),
            ));
        }
        let found = file_sum(&path)?;
        if found != self.sum {
            return Err(TrainError::corrupt(
                &path,
                format!(
                    "damaged since it was written: {} bytes with CRC-32C {}, the list recorded {} \
                     bytes with CRC-32C {}",
                    found.bytes, found.crc32c, self.sum.bytes, self.sum.crc32c
                ),
            ));
        }
        let tensors = Tensor::read_safetensors(&path).map_err(|e| TrainError::corrupt(&path, e))?;
        Ok(tensors.into_iter().collect())
    }
}

/// The snapshot list of a run, sorted by std then step. A run without one is an error naming
/// the missing file and the config that writes it.
pub fn list(run_dir: &Path) -> Result<Vec<Snapshot>> {
    let path = manifest_path(run_dir);
    match std::fs::metadata(&path) {
        Ok(m) if m.len() > MAX_MANIFEST_BYTES => {
            return Err(TrainError::corrupt(
                &path,
                format!("{} bytes, more than a snapshot list can be", m.len()),
            ))
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(TrainError::Invalid(format!(
                "{}: no post-hoc EMA snapshots (the run needs [ema] posthoc = {{ stds = [...], \
                 snapshot_every = N }})",
                path.display()
            )))
        }
        Err(e) => return Err(TrainError::io(&path, e)),
    }
    let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
    let mut all: Vec<Snapshot> =
        serde_json::from_str(&text).map_err(|e| TrainError::corrupt(&path, e))?;
    for s in &all {
        let inside = !s.file.contains("..") && !s.file.starts_with('/');
        let valid = inside && s.step >= 1 && s.gamma.is_finite() && s.gamma > 0.0;
        if !valid {
            return Err(TrainError::corrupt(
                &path,
                format!(
                    "invalid entry (file {:?}, step {}, gamma {})",
                    s.file, s.step, s.gamma
                ),
            ));
        }
    }
    all.sort_by(|a, b| a.std.total_cmp(&b.std).then(a.step.cmp(&b.step)));
    Ok(all)
}

/// Writes the snapshot of std `std` (exponent `gamma`) after step `step` and lists it,
/// replacing an entry of the same std and step (a resumed run redoing steps after its
/// checkpoint).
pub fn write(
    run_dir: &Path,
    std: f64,
    gamma: f64,
    step: u64,
    tensors: &[(String, Tensor)],
) -> Result<Snapshot> {
    let file = format!("std-{std}/step-{step:09}.safetensors");
    let path = posthoc_dir(run_dir).join(&file);
    let parent = path.parent().expect("has a folder");
    std::fs::create_dir_all(parent).map_err(|e| TrainError::io(parent, e))?;
    let cpu: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(k, t)| Ok((k.clone(), t.f_detach()?.f_to_device(tch::Device::Cpu)?)))
        .collect::<Result<_>>()?;
    flowscale_core::atomic::write_atomic_with(&path, |tmp| {
        Tensor::write_safetensors(&cpu, tmp)
            .map_err(|e| TrainError::io(tmp, std::io::Error::other(e.to_string())))
    })
    .map_err(|e| e.into_error::<TrainError>())?;
    let snapshot = Snapshot {
        std,
        gamma,
        step,
        file,
        sum: file_sum(&path)?,
    };
    let mut all = match list(run_dir) {
        Ok(all) => all,
        // The first snapshot of the run.
        Err(_) if !manifest_path(run_dir).exists() => Vec::new(),
        Err(e) => return Err(e),
    };
    all.retain(|s| !(s.std == std && s.step == step));
    all.push(snapshot.clone());
    all.sort_by(|a, b| a.std.total_cmp(&b.std).then(a.step.cmp(&b.step)));
    let json = serde_json::to_vec_pretty(&all)
        .map_err(|e| TrainError::Invalid(format!("snapshot list: {e}")))?;
    flowscale_core::write_atomic(&manifest_path(run_dir), &json)?;
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensors(v: f32) -> Vec<(String, Tensor)> {
        vec![("w".to_string(), Tensor::from_slice(&[v, 2.0 * v]))]
    }

    #[test]
    fn written_snapshots_are_listed_and_read_back() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path();
        write(run, 0.1, 6.9, 4, &tensors(1.0)).unwrap();
        write(run, 0.05, 16.9, 4, &tensors(2.0)).unwrap();
        write(run, 0.1, 6.9, 2, &tensors(3.0)).unwrap();
        // A rewrite of the same std and step replaces the entry.
        write(run, 0.1, 6.9, 4, &tensors(5.0)).unwrap();
        let all = list(run).unwrap();
        let keys: Vec<(f64, u64)> = all.iter().map(|s| (s.std, s.step)).collect();
        assert_eq!(keys, vec![(0.05, 4), (0.1, 2), (0.1, 4)]);
        let back = all[2].load(run).unwrap();
        assert!(back["w"].equal(&Tensor::from_slice(&[5.0f32, 10.0])));
        assert_eq!(all[2].file, "std-0.1/step-000000004.safetensors");
    }

    #[test]
    fn missing_list_truncated_and_missing_files_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path();
        let err = list(run).unwrap_err().to_string();
        assert!(
            err.contains("snapshots.json") && err.contains("posthoc"),
            "{err}"
        );
        let s = write(run, 0.1, 6.9, 2, &tensors(1.0)).unwrap();
        let path = posthoc_dir(run).join(&s.file);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let err = s.load(run).unwrap_err().to_string();
        assert!(
            err.contains("step-000000002.safetensors") && err.contains("damaged"),
            "{err}"
        );
        std::fs::remove_file(&path).unwrap();
        let err = s.load(run).unwrap_err().to_string();
        assert!(
            err.contains("step-000000002.safetensors") && err.contains("missing"),
            "{err}"
        );
        std::fs::write(manifest_path(run), b"[{").unwrap();
        let err = list(run).unwrap_err().to_string();
        assert!(err.contains("snapshots.json"), "{err}");
    }
}
