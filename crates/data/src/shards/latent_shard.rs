//! Latent shards: WebDataset tar files with one entry group per sample, keyed `<key>.<ext>`:
//!
//! - `mean.npy`, `std.npy`: the autoencoder posterior's mean and standard deviation (training
//!   resamples `mean + std * eps`); float16 or float32
//! - `flip_mean.npy`, `flip_std.npy`: the same for the horizontally flipped image (optional)
//! - `cls`: the class label as decimal text (optional); `txt`: the caption (optional)
//! - `context.npy`, `pooled.npy`: text-encoder outputs of `txt` in float16 (optional)
//! - `<field>.txt`, `<field>.context.npy`, `<field>.pooled.npy`: a further caption of the image
//!   (for example a synthetic one, the paper's caption study) and its encoding
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

/// The caption field stored at the plain extensions (`txt`, `context.npy`, `pooled.npy`).
pub const PRIMARY_CAPTION: &str = "txt";

/// One caption of a sample: its text and/or its text-encoder outputs.
#[derive(Debug)]
pub struct SampleCaption {
    /// [`PRIMARY_CAPTION`] or the name of a further field (`[A-Za-z0-9_]`, no dots: webdataset
    /// splits names at the first dot).
    pub field: String,
    pub text: Option<String>,
    /// `context [T, D]`, `pooled [P]`.
    pub embedding: Option<(Tensor, Tensor)>,
}

impl SampleCaption {
    /// The shard extension of `what` (`txt`, `context.npy`, `pooled.npy`) for this field.
    fn ext(&self, what: &str) -> String {
        caption_ext(&self.field, what)
    }
}

fn caption_ext(field: &str, what: &str) -> String {
    if field == PRIMARY_CAPTION {
        what.to_owned()
    } else {
        format!("{field}.{what}")
    }
}

/// Whether `field` can name a caption field: 1-32 of `[A-Za-z0-9_]`.
pub fn is_caption_field(field: &str) -> bool {
    (1..=32).contains(&field.len())
        && field
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// One sample of a latent shard.
#[derive(Debug)]
pub struct LatentSample {
    pub key: String,
    pub mean: Tensor,
    pub std: Tensor,
    pub flip: Option<(Tensor, Tensor)>,
    pub label: Option<i64>,
    /// Its captions, [`PRIMARY_CAPTION`] first when present.
    pub captions: Vec<SampleCaption>,
}

impl LatentSample {
    /// The caption of `field`.
    pub fn caption(&self, field: &str) -> Option<&SampleCaption> {
        self.captions.iter().find(|c| c.field == field)
    }
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
        for c in &s.captions {
            let once = s.captions.iter().filter(|o| o.field == c.field).count() == 1;
            let empty = c.text.is_none() && c.embedding.is_none();
            if !is_caption_field(&c.field) || !once || empty {
                return Err(DataError::Invalid(format!(
                    "{}: sample {}: caption field {:?} must be 1-32 of [A-Za-z0-9_], appear once \
                     and hold a text or an embedding",
                    self.path.display(),
                    s.key,
                    c.field
                )));
            }
            if let Some(t) = &c.text {
                entries.push((c.ext("txt"), t.clone().into_bytes()));
            }
            if let Some((ctx, p)) = &c.embedding {
                entries.push((c.ext("context.npy"), to_npy(ctx)?));
                entries.push((c.ext("pooled.npy"), to_npy(p)?));
            }
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

/// The caption field an entry extension belongs to, if it is a caption entry.
fn caption_field_of(ext: &str) -> Option<String> {
    for what in ["txt", "context.npy", "pooled.npy"] {
        if ext == what {
            return Some(PRIMARY_CAPTION.to_owned());
        }
        if let Some(field) = ext.strip_suffix(what).and_then(|f| f.strip_suffix('.')) {
            if is_caption_field(field) {
                return Some(field.to_owned());
            }
        }
    }
    None
}

/// `t`, the `ext` array of sample `key`, when its values can be trained on: a NaN or infinite
/// latent or text embedding would turn every loss and sample it reaches into NaN without an
/// error, and a negative standard deviation is not one.
fn checked_values(t: Tensor, path: &Path, key: &str, ext: &str) -> Result<Tensor> {
    let bad = |what: &str| {
        Err(DataError::corrupt(
            path,
            format!("sample {key}: {ext} {what}"),
        ))
    };
    if !t.is_floating_point() {
        return Ok(t);
    }
    if t.numel() > 0 && t.isfinite().all().int64_value(&[]) == 0 {
        return bad("holds NaN or infinite values");
    }
    let is_std = ext == "std.npy" || ext == "flip_std.npy";
    if is_std && t.numel() > 0 && t.lt(0.0).any().int64_value(&[]) != 0 {
        return bad("holds negative standard deviations");
    }
    Ok(t)
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
            let npy = |g: &mut BTreeMap<String, Vec<u8>>, ext: &str| -> Result<Option<Tensor>> {
                g.remove(ext)
                    .map(|b| checked_values(from_npy(&b, &what(ext))?, path, &key, ext))
                    .transpose()
            };
            let mean = npy(&mut g, "mean.npy")?;
            let std = npy(&mut g, "std.npy")?;
            let (Some(mean), Some(std)) = (mean, std) else {
                return Err(DataError::corrupt(
                    path,
                    format!("sample {key} has no mean.npy/std.npy"),
                ));
            };
            let flip = match (npy(&mut g, "flip_mean.npy")?, npy(&mut g, "flip_std.npy")?) {
                (Some(m), Some(s)) => Some((m, s)),
                _ => None,
            };
            let label = match g.remove("cls") {
                Some(b) => Some(String::from_utf8_lossy(&b).trim().parse::<i64>().map_err(
                    |_| DataError::corrupt(path, format!("sample {key}: cls is not an integer")),
                )?),
                None => None,
            };
            let mut fields: Vec<String> =
                g.keys().filter_map(|ext| caption_field_of(ext)).collect();
            fields.sort_by_key(|f| (f != PRIMARY_CAPTION, f.clone()));
            fields.dedup();
            let mut captions = Vec::with_capacity(fields.len());
            for field in fields {
                let text = match g.remove(&caption_ext(&field, "txt")) {
                    Some(b) => Some(String::from_utf8(b).map_err(|_| {
                        DataError::corrupt(
                            path,
                            format!("sample {key}: {} is not UTF-8", caption_ext(&field, "txt")),
                        )
                    })?),
                    None => None,
                };
                let ctx = npy(&mut g, &caption_ext(&field, "context.npy"))?;
                let pooled = npy(&mut g, &caption_ext(&field, "pooled.npy"))?;
                let embedding = match (ctx, pooled) {
                    (Some(c), Some(p)) => Some((c, p)),
                    (None, None) => None,
                    _ => {
                        return Err(DataError::corrupt(
                            path,
                            format!(
                                "sample {key}: caption {field} has only one of context.npy and \
                                 pooled.npy"
                            ),
                        ))
                    }
                };
                captions.push(SampleCaption {
                    field,
                    text,
                    embedding,
                });
            }
            Ok(LatentSample {
                key,
                mean,
                std,
                flip,
                label,
                captions,
            })
        })
        .collect()
}
