//! The record of a finished unit, `<dir>/.precompute/<shard>.json`: what went into the shard and
//! what was skipped. It is written after the shard is renamed into place, so a unit counts as
//! done only when both exist; a process killed in between redoes the unit to the same bytes.
//! A unit of a bucketed precompute writes one shard per aspect bucket its images fall into
//! (`train-000000-b02.tar`, see [`bucket_file`]) and its record lists them.

use crate::bad_samples::BadSample;
use crate::error::{DataError, Result};
use crate::shards::LatentSums;
use flowscale_core::write_atomic;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Folder of the records inside the shard directory.
pub const RECORDS_DIR: &str = ".precompute";

/// The shard of one aspect bucket written by a unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketShard {
    /// Index into the configured buckets.
    pub bucket: u32,
    pub file: String,
    pub samples: u64,
    pub bytes: u64,
}

/// The shard file of bucket `bucket` of the unit whose shard would be `unit_file`
/// (`train-000000.tar` -> `train-000000-b02.tar`).
pub fn bucket_file(unit_file: &str, bucket: usize) -> String {
    let stem = unit_file.strip_suffix(".tar").unwrap_or(unit_file);
    format!("{stem}-b{bucket:02}.tar")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardRecord {
    /// The unit's shard; with buckets only the unit's name (its shards are `buckets`).
    pub file: String,
    /// Samples written (over all buckets); 0 when every sample of the unit was skipped (no shard
    /// file then).
    pub samples: u64,
    pub bytes: u64,
    /// With aspect buckets: the unit's shard of each bucket that received samples, by bucket.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buckets: Vec<BucketShard>,
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
            buckets: Vec::new(),
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
        let shards: Vec<(&str, u64)> = if record.buckets.is_empty() {
            vec![(file, record.bytes)]
        } else {
            record
                .buckets
                .iter()
                .map(|b| (b.file.as_str(), b.bytes))
                .collect()
        };
        for (name, bytes) in shards {
            let shard = dir.join(name);
            match std::fs::metadata(&shard) {
                Ok(m) if m.len() == bytes => {}
                // Replaced or damaged since: redo the unit.
                Ok(_) => return Ok(None),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(DataError::io(&shard, e)),
            }
        }
        Ok(Some(record))
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
