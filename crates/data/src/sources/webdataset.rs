//! Image-caption pairs from WebDataset tar shards as img2dataset writes them (CC12M):
//! `<key>.jpg` + `<key>.txt`, optionally `<key>.json` (ignored) and `<key>.cls` (an integer
//! label). Shards are streamed entry by entry. A damaged shard keeps the samples before the
//! damage and is reported by path; a sample without a caption is reported by key, or kept
//! unconditioned when captions are optional. Further caption fields asked for
//! ([`WebDatasetImages::with_caption_fields`]) are read from `<key>.<field>.txt`
//! (`000123.syn.txt`); a sample without one of them is reported whatever the policy, since the
//! fields are there to be compared on the same images.

use super::folder::{sorted_dir, IMAGE_EXTENSIONS};
use super::keys::split_member;
use super::{safe_key, FieldCaption, ImageSource, Sample, SourceItem};
use crate::bad_samples::BadSample;
use crate::shards::tar::TarEntries;
use std::collections::VecDeque;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// What to do with a sample that has no `.txt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptionPolicy {
    /// Skip it and report it (text-to-image training).
    Required,
    /// Keep it with `caption: None` (trained unconditioned).
    Optional,
}

/// The members of one key read so far.
struct Group {
    key: String,
    image: Option<Vec<u8>>,
    caption: Option<Vec<u8>>,
    /// `(field, bytes)` of the further caption fields asked for.
    further: Vec<(String, Vec<u8>)>,
    label: Option<Vec<u8>>,
}

/// Streams the samples of `shards` in order.
pub struct WebDatasetImages {
    shards: VecDeque<PathBuf>,
    entries: Option<TarEntries<BufReader<File>>>,
    group: Option<Group>,
    ready: VecDeque<SourceItem>,
    policy: CaptionPolicy,
    /// Further caption fields to read (not `txt`).
    further: Vec<String>,
}

impl WebDatasetImages {
    pub fn new(shards: Vec<PathBuf>, policy: CaptionPolicy) -> Self {
        Self {
            shards: shards.into(),
            entries: None,
            group: None,
            ready: VecDeque::new(),
            policy,
            further: Vec::new(),
        }
    }

    /// Also reads the caption of each of the `further` fields (not `txt`), from
    /// `<key>.<field>.txt`; every sample must have all of them.
    pub fn with_caption_fields(mut self, further: Vec<String>) -> Self {
        self.further = further;
        self
    }

    /// The `*.tar` files of `dir`, sorted by name.
    pub fn shards_in(dir: &Path) -> crate::Result<Vec<PathBuf>> {
        let shards: Vec<PathBuf> = sorted_dir(dir)?
            .into_iter()
            .filter(|p| p.extension().is_some_and(|x| x == "tar"))
            .collect();
        if shards.is_empty() {
            return Err(crate::DataError::Invalid(format!(
                "{}: no .tar shards",
                dir.display()
            )));
        }
        Ok(shards)
    }

    fn shard_path(&self) -> &Path {
        self.entries.as_ref().map_or(Path::new("?"), |e| e.path())
    }

    /// Turns the finished group into a sample or a bad-sample entry.
    fn finish_group(&mut self) {
        let Some(g) = self.group.take() else { return };
        let shard = self.shard_path().display().to_string();
        let key = safe_key(&g.key);
        let item = (|| {
            let image = g
                .image
                .ok_or_else(|| format!("no image (.jpg/.jpeg/.png/.webp) in {shard}"))?;
            let caption = match g.caption {
                Some(bytes) => Some(
                    String::from_utf8(bytes)
                        .map_err(|_| format!("caption is not UTF-8 in {shard}"))?
                        .trim()
                        .to_string(),
                ),
                None if self.policy == CaptionPolicy::Optional => None,
                None => return Err(format!("no caption (.txt) in {shard}")),
            };
            let mut further_captions = Vec::with_capacity(self.further.len());
            for field in &self.further {
                let Some((_, bytes)) = g.further.iter().find(|(f, _)| f == field) else {
                    return Err(format!("no {field} caption (.{field}.txt) in {shard}"));
                };
                let text = std::str::from_utf8(bytes).map_err(|_| {
                    format!("caption {field} (.{field}.txt) is not UTF-8 in {shard}")
                })?;
                further_captions.push(FieldCaption {
                    field: field.clone(),
                    text: text.trim().to_string(),
                });
            }
            let label = match g.label {
                Some(bytes) => Some(
                    std::str::from_utf8(&bytes)
                        .ok()
                        .and_then(|s| s.trim().parse::<i64>().ok())
                        .ok_or_else(|| format!(".cls is not an integer in {shard}"))?,
                ),
                None => None,
            };
            Ok(Sample {
                key: key.clone(),
                image: ImageSource::Bytes(image),
                label,
                caption,
                further_captions,
            })
        })()
        .map_err(|reason| BadSample::new(key.clone(), reason));
        self.ready.push_back(item);
    }

    /// Reads entries until at least one item is ready or the shards are exhausted.
    fn fill(&mut self) {
        while self.ready.is_empty() {
            let Some(entries) = self.entries.as_mut() else {
                let Some(path) = self.shards.pop_front() else {
                    return;
                };
                // Opened with its length, so no entry can claim more than the file holds.
                match TarEntries::open(&path) {
                    Ok(entries) => self.entries = Some(entries),
                    Err(e) => self
                        .ready
                        .push_back(Err(BadSample::new(path.display().to_string(), reason(e)))),
                }
                continue;
            };
            match entries.next() {
                Some(Ok((name, data))) => {
                    let (key, ext) = split_member(&name).unwrap_or((&name, ""));
                    if self.group.as_ref().is_some_and(|g| g.key != key) {
                        self.finish_group();
                    }
                    let g = self.group.get_or_insert_with(|| Group {
                        key: key.to_string(),
                        image: None,
                        caption: None,
                        further: Vec::new(),
                        label: None,
                    });
                    let field = further_field(ext, &self.further);
                    let ext = ext.to_ascii_lowercase();
                    if IMAGE_EXTENSIONS.contains(&ext.as_str()) {
                        g.image.get_or_insert(data);
                    } else if ext == "txt" {
                        g.caption = Some(data);
                    } else if ext == "cls" {
                        g.label = Some(data);
                    } else if let Some(field) = field {
                        // A repeated member replaces the earlier one, as for `.txt`.
                        g.further.retain(|(f, _)| f != field);
                        g.further.push((field.to_owned(), data));
                    }
                }
                Some(Err(e)) => {
                    // The entry in flight is lost; what the last key already has may still be
                    // a complete sample (judged as usual).
                    self.finish_group();
                    let shard = self.shard_path().display().to_string();
                    self.ready.push_back(Err(BadSample::new(
                        shard,
                        format!("damaged shard, rest skipped: {}", reason(e)),
                    )));
                    self.entries = None;
                }
                None => {
                    self.finish_group();
                    self.entries = None;
                }
            }
        }
    }
}

/// The further field among `fields` whose caption member has extension `ext` (`syn.txt`): the
/// field name is matched exactly (fields are case-sensitive), `txt` in any case like `.txt`.
fn further_field<'f>(ext: &str, fields: &'f [String]) -> Option<&'f str> {
    let (field, last) = ext.rsplit_once('.')?;
    if !last.eq_ignore_ascii_case("txt") {
        return None;
    }
    fields.iter().find(|f| *f == field).map(String::as_str)
}

/// An error's reason without the shard's path: the bad-sample entry names the shard already.
fn reason(e: crate::DataError) -> String {
    match e {
        crate::DataError::Corrupt { reason, .. } => reason,
        crate::DataError::Io { source, .. } => source.to_string(),
        e => e.to_string(),
    }
}

impl Iterator for WebDatasetImages {
    type Item = SourceItem;

    fn next(&mut self) -> Option<SourceItem> {
        self.fill();
        self.ready.pop_front()
    }
}
