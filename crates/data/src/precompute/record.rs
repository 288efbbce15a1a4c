//! The record of a finished unit, `<dir>/.precompute/<shard>.json`: what went into the shard and
//! what was skipped. It is written after the shard is renamed into place, so a unit counts as
//! done only when both exist; a process killed in between redoes the unit to the same bytes.

use crate::bad_samples::BadSample;
use crate::error::{DataError, Result};
use crate::shards::LatentSums;
use flowscale_core::write_atomic;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Folder of the records inside the shard directory.
pub const RECORDS_DIR: &str = ".precompute";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardRecord {
    pub file: String,
    /// Samples written; 0 when every sample of the unit was skipped (no shard file then).
    pub samples: u64,
    pub bytes: u64,
    pub skipped: Vec<BadSample>,
    /// Per-channel sums of the unit's latents (train units; see [`LatentSums`]). Records of an
    /// older flowscale have none, and then the manifest has no statistics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latent_sums: Option<LatentSums>,
}

impl ShardRecord {
    pub fn new(
        file: &str,
        samples: u64,
        bytes: u64,
        skipped: Vec<BadSample>,
        latent_sums: Option<LatentSums>,
    ) -> Self {
        Self {
            file: file.to_owned(),
            samples,
            bytes,
            skipped,
            latent_sums,
        }
    }

    pub fn path(dir: &Path, file: &str) -> PathBuf {
        dir.join(RECORDS_DIR).join(format!("{file}.json"))
    }

    /// The record of `file` when the unit is complete: the record exists and so does the shard
    /// (unless it holds no samples) with the recorded size.
    pub fn load_complete(dir: &Path, file: &str) -> Result<Option<Self>> {
        let path = Self::path(dir, file);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(DataError::io(&path, e)),
        };
        let record: Self = serde_json::from_str(&text)
            .map_err(|e| DataError::corrupt(&path, format!("not a shard record: {e}")))?;
        if record.samples == 0 {
            return Ok(Some(record));
        }
        let shard = dir.join(file);
        match std::fs::metadata(&shard) {
            Ok(m) if m.len() == record.bytes => Ok(Some(record)),
            // Replaced or damaged since: redo the unit.
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(DataError::io(&shard, e)),
        }
    }

    /// Writes the record through a temporary file and a rename.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = Self::path(dir, &self.file);
        let parent = path.parent().expect("records dir");
        std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
        let text = serde_json::to_string_pretty(self).expect("serializable");
        Ok(write_atomic(&path, text.as_bytes())?)
    }
}
