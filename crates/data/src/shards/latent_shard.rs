//! Latent shards: WebDataset tar files with one entry group per sample, keyed `<key>.<ext>`:
//!
//! - `mean.npy`, `std.npy`: the autoencoder posterior's mean and standard deviation (training
//!   resamples `mean + std * eps`); float16 or float32
//! - `flip_mean.npy`, `flip_std.npy`: the same for the horizontally flipped image (optional)
//! - `cls`: the class label as decimal text (optional); `txt`: the caption (optional)
//! - `context.npy`, `pooled.npy`: text-encoder outputs in float16 (optional)
//!
//! Python reads them with `webdataset.WebDataset(url).decode()`. [`LatentShardWriter`] writes to a
//! temporary name and renames when complete, so a killed writer leaves no partial shard.

use super::npy::{from_npy, to_npy};
use super::tar::{TarEntries, TarWriter};
use crate::error::{DataError, Result};
use crate::sources::keys::{is_safe_key, split_member};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use tch::Tensor;

/// One sample of a latent shard.
#[derive(Debug)]
pub struct LatentSample {
    pub key: String,
    pub mean: Tensor,
    pub std: Tensor,
    pub flip: Option<(Tensor, Tensor)>,
    pub label: Option<i64>,
    pub caption: Option<String>,
    pub text: Option<(Tensor, Tensor)>,
}

/// Writes one shard; call [`LatentShardWriter::finish`] to make it visible.
pub struct LatentShardWriter {
    path: PathBuf,
    tmp: PathBuf,
    tar: Option<TarWriter<BufWriter<File>>>,
    samples: usize,
}

impl LatentShardWriter {
    pub fn create(path: &Path) -> Result<Self> {
        let tmp = flowscale_core::atomic::tmp_path(path);
        let file = File::create(&tmp).map_err(|e| DataError::io(&tmp, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            tmp,
            tar: Some(TarWriter::new(BufWriter::new(file))),
            samples: 0,
        })
    }

    pub fn append(&mut self, s: &LatentSample) -> Result<()> {
        if !is_safe_key(&s.key) {
            return Err(DataError::Invalid(format!(
                "{}: sample key {:?} must be 1-64 of [A-Za-z0-9_-] (webdataset splits keys at dots)",
                self.path.display(),
                s.key
            )));
        }
        let mut entries: Vec<(String, Vec<u8>)> = vec![
            ("mean.npy".into(), to_npy(&s.mean)?),
            ("std.npy".into(), to_npy(&s.std)?),
        ];
        if let Some((m, d)) = &s.flip {
            entries.push(("flip_mean.npy".into(), to_npy(m)?));
            entries.push(("flip_std.npy".into(), to_npy(d)?));
        }
        if let Some(l) = s.label {
            entries.push(("cls".into(), l.to_string().into_bytes()));
        }
        if let Some(c) = &s.caption {
            entries.push(("txt".into(), c.clone().into_bytes()));
        }
        if let Some((c, p)) = &s.text {
            entries.push(("context.npy".into(), to_npy(c)?));
            entries.push(("pooled.npy".into(), to_npy(p)?));
        }
        let tar = self.tar.as_mut().expect("not finished");
        for (ext, bytes) in entries {
            tar.append(&format!("{}.{ext}", s.key), &bytes)
                .map_err(|e| DataError::io(&self.tmp, e))?;
        }
        self.samples += 1;
        Ok(())
    }

    /// Flushes, syncs and renames the shard into place; returns its bytes.
    pub fn finish(mut self) -> Result<u64> {
        let tar = self.tar.take().expect("finish once");
        let bytes = tar.bytes_written() + 1024;
        let out = tar.finish().map_err(|e| DataError::io(&self.tmp, e))?;
        let file = out
            .into_inner()
            .map_err(|e| DataError::io(&self.tmp, e.into_error()))?;
        file.sync_all().map_err(|e| DataError::io(&self.tmp, e))?;
        flowscale_core::atomic::rename_into_place(&self.tmp, &self.path)?;
        Ok(bytes)
    }

    pub fn samples(&self) -> usize {
        self.samples
    }
}

impl Drop for LatentShardWriter {
    fn drop(&mut self) {
        // An unfinished shard (error, panic) must not be mistaken for a complete one.
        if self.tar.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Reads every sample of a shard. Missing `mean.npy`/`std.npy` or a malformed entry is an error
/// naming the shard and the sample.
pub fn read_latent_shard(path: &Path) -> Result<Vec<LatentSample>> {
    // Opened with its length, so no entry can claim more than the file holds.
    let entries = TarEntries::open(path)?.collect::<Result<Vec<_>>>()?;
    let mut groups: Vec<(String, BTreeMap<String, Vec<u8>>)> = Vec::new();
    for (name, data) in entries {
        let Some((key, ext)) = split_member(&name) else {
            continue;
        };
        match groups.last_mut() {
            Some((k, g)) if k == key => {
                g.insert(ext.to_owned(), data);
            }
            _ => groups.push((key.to_owned(), BTreeMap::from([(ext.to_owned(), data)]))),
        }
    }
    groups
        .into_iter()
        .map(|(key, mut g)| {
            let what = |ext: &str| format!("{}: sample {key}: {ext}", path.display());
            let mut npy = |ext: &str| -> Result<Option<Tensor>> {
                g.remove(ext).map(|b| from_npy(&b, &what(ext))).transpose()
            };
            let mean = npy("mean.npy")?;
            let std = npy("std.npy")?;
            let (Some(mean), Some(std)) = (mean, std) else {
                return Err(DataError::corrupt(
                    path,
                    format!("sample {key} has no mean.npy/std.npy"),
                ));
            };
            let flip = match (npy("flip_mean.npy")?, npy("flip_std.npy")?) {
                (Some(m), Some(s)) => Some((m, s)),
                _ => None,
            };
            let text = match (npy("context.npy")?, npy("pooled.npy")?) {
                (Some(c), Some(p)) => Some((c, p)),
                _ => None,
            };
            let label = match g.remove("cls") {
                Some(b) => Some(String::from_utf8_lossy(&b).trim().parse::<i64>().map_err(
                    |_| DataError::corrupt(path, format!("sample {key}: cls is not an integer")),
                )?),
                None => None,
            };
            let caption = g
                .remove("txt")
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            Ok(LatentSample {
                key,
                mean,
                std,
                flip,
                label,
                caption,
                text,
            })
        })
        .collect()
}
