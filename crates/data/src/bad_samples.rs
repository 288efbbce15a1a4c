//! Samples that could not be used (unreadable, corrupt, missing a caption): skipped, counted and
//! listed by name, so one bad file in twelve million never ends a run, while a broken dataset
//! (too many bad samples) does, with the counts and a few names.

use crate::error::{DataError, Result};
use std::path::Path;

/// One skipped sample (or lost stretch of a damaged shard). Serialised as `{name, reason}` in
/// precompute's shard records.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BadSample {
    /// The sample's key or file path, or the shard's path for damage past the last good sample.
    pub name: String,
    pub reason: String,
}

impl BadSample {
    pub fn new(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for BadSample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name, self.reason)
    }
}

/// How many samples were seen and which were bad.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BadSampleReport {
    seen: usize,
    bad: Vec<BadSample>,
}

/// How many bad names an error message lists.
const NAMES_IN_ERRORS: usize = 5;

impl BadSampleReport {
    pub fn new() -> Self {
        Self::default()
    }

    /// `n` samples used.
    pub fn record_good(&mut self, n: usize) {
        self.seen += n;
    }

    pub fn record_bad(&mut self, bad: BadSample) {
        self.seen += 1;
        self.bad.push(bad);
    }

    /// Adds another report's counts and entries (e.g. per-worker reports).
    pub fn merge(&mut self, other: BadSampleReport) {
        self.seen += other.seen;
        self.bad.extend(other.bad);
    }

    /// Good and bad samples together.
    pub fn seen(&self) -> usize {
        self.seen
    }

    pub fn bad(&self) -> &[BadSample] {
        &self.bad
    }

    pub fn into_bad(self) -> Vec<BadSample> {
        self.bad
    }

    pub fn bad_fraction(&self) -> f64 {
        if self.seen == 0 {
            0.0
        } else {
            self.bad.len() as f64 / self.seen as f64
        }
    }

    /// An error when more than `max_fraction` of the samples seen were bad.
    pub fn check(&self, max_fraction: f64) -> Result<()> {
        if self.bad_fraction() <= max_fraction {
            return Ok(());
        }
        let names: Vec<String> = self
            .bad
            .iter()
            .take(NAMES_IN_ERRORS)
            // One line: a decoder's reason may span several.
            .map(|b| b.to_string().replace(['\n', '\r'], " "))
            .collect();
        let more = self.bad.len().saturating_sub(NAMES_IN_ERRORS);
        Err(DataError::Invalid(format!(
            "{} of {} samples are bad ({:.2}%, more than the allowed {:.2}%): {}{}",
            self.bad.len(),
            self.seen,
            100.0 * self.bad_fraction(),
            100.0 * max_fraction,
            names.join("; "),
            if more > 0 {
                format!("; and {more} more")
            } else {
                String::new()
            }
        )))
    }

    /// Writes the report as tab-separated `name reason` lines (tabs and newlines inside a field
    /// become spaces), to a temporary name renamed into place when complete.
    pub fn write_tsv(&self, path: &Path) -> Result<()> {
        let mut text = format!(
            "# {} bad of {} samples\nname\treason\n",
            self.bad.len(),
            self.seen
        );
        let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
        for b in &self.bad {
            text.push_str(&format!("{}\t{}\n", clean(&b.name), clean(&b.reason)));
        }
        Ok(flowscale_core::write_atomic(path, text.as_bytes())?)
    }
}
