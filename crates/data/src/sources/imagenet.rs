//! ImageNet (ILSVRC-2012) in its standard layout: `train/<wnid>/*.JPEG`, and `val/*.JPEG` with a
//! label file. Classes come from a mapping file (`LOC_synset_mapping.txt`: `n01440764 tench,
//! Tinca tinca`); a label is the index of the wnid in sorted order (the mapping file's order in
//! the Kaggle release). Captions are the SD3 paper's "a photo of a <class name>", the name drawn
//! from the class's comma-separated synonyms by a hash of the seed and the sample key, so a
//! sample's caption is fixed for a seed.

use super::folder::{is_image, sorted_dir};
use super::keys::{safe_key_bytes, stable_hash};
use super::{ImageSource, Sample, SourceItem};
use crate::bad_samples::BadSample;
use crate::error::{DataError, Result};
use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The validation split's label file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValLabels {
    /// Kaggle's `LOC_val_solution.csv`: `ImageId,PredictionString`, the wnid first in the string.
    LocSolution(PathBuf),
    /// One wnid per line, for the images in sorted file order (e.g. TensorFlow's
    /// `imagenet_2012_validation_synset_labels.txt`).
    WnidPerLine(PathBuf),
    /// The devkit's `ILSVRC2012_validation_ground_truth.txt` (one 1-based ILSVRC2012_ID per line,
    /// sorted file order) with `synsets`, the wnids in ILSVRC2012_ID order (one per line, from
    /// the devkit's `meta.mat`): the devkit's IDs are not the sorted-wnid labels.
    DevkitIds {
        ground_truth: PathBuf,
        synsets: PathBuf,
    },
}

/// The class table and caption seed.
#[derive(Debug, Clone)]
pub struct ImageNet {
    /// Sorted.
    wnids: Vec<String>,
    /// Per label, the synonyms of its class name.
    names: Vec<Vec<String>>,
    caption_seed: u64,
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))
}

impl ImageNet {
    /// Reads `LOC_synset_mapping.txt`.
    pub fn from_mapping(path: &Path) -> Result<Self> {
        let mut classes: Vec<(String, Vec<String>)> = Vec::new();
        for (i, line) in read_text(path)?.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let (wnid, names) = line.trim().split_once(' ').ok_or_else(|| {
                DataError::corrupt(path, format!("line {}: expected '<wnid> <names>'", i + 1))
            })?;
            let names: Vec<String> = names
                .split(',')
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())
                .collect();
            if !wnid.starts_with('n') || names.is_empty() {
                return Err(DataError::corrupt(
                    path,
                    format!(
                        "line {}: {line:?} is not '<wnid> <name>[, <name>...]'",
                        i + 1
                    ),
                ));
            }
            classes.push((wnid.to_string(), names));
        }
        classes.sort();
        if let Some(w) = classes.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(DataError::corrupt(path, format!("{} listed twice", w[0].0)));
        }
        if classes.is_empty() {
            return Err(DataError::corrupt(path, "no classes"));
        }
        let (wnids, names) = classes.into_iter().unzip();
        Ok(Self {
            wnids,
            names,
            caption_seed: 0,
        })
    }

    pub fn with_caption_seed(mut self, seed: u64) -> Self {
        self.caption_seed = seed;
        self
    }

    pub fn num_classes(&self) -> usize {
        self.wnids.len()
    }

    pub fn label_of(&self, wnid: &str) -> Option<i64> {
        let i = self.wnids.binary_search_by(|w| w.as_str().cmp(wnid)).ok()?;
        Some(i as i64)
    }

    /// The synonyms of a class, as in the mapping file.
    pub fn class_names(&self, label: i64) -> &[String] {
        &self.names[label as usize]
    }

    /// "a photo of a <name>", the synonym chosen by the seed and the key.
    pub fn caption(&self, label: i64, key: &str) -> String {
        let names = self.class_names(label);
        let mut seeded = self.caption_seed.to_le_bytes().to_vec();
        seeded.extend_from_slice(key.as_bytes());
        let pick = stable_hash(&seeded) % names.len() as u64;
        format!("a photo of a {}", names[pick as usize])
    }

    fn sample(&self, path: PathBuf, label: i64) -> Sample {
        let key = safe_key_bytes(path.file_stem().unwrap_or_default().as_bytes());
        Sample {
            caption: Some(self.caption(label, &key)),
            key,
            image: ImageSource::File(path),
            label: Some(label),
            further_captions: Vec::new(),
        }
    }

    /// The training split under `train_dir` (`<wnid>/*.JPEG`), classes in sorted order and
    /// files sorted by name within a class; a class folder is listed only when reached. Every
    /// folder must be a known wnid (a subset of the classes is fine).
    pub fn train(&self, train_dir: &Path) -> Result<impl Iterator<Item = SourceItem> + '_> {
        let mut dirs = Vec::new();
        for path in sorted_dir(train_dir)? {
            if !path.is_dir() {
                continue;
            }
            let wnid = path.file_name().unwrap_or_default().to_string_lossy();
            let label = self.label_of(&wnid).ok_or_else(|| {
                DataError::corrupt(
                    train_dir,
                    format!("class folder {wnid} is not in the synset mapping"),
                )
            })?;
            dirs.push((path, label));
        }
        Ok(dirs.into_iter().flat_map(move |(dir, label)| {
            let items: Vec<SourceItem> = match sorted_dir(&dir) {
                Ok(files) => files
                    .into_iter()
                    .filter(|p| is_image(p))
                    .map(|p| Ok(self.sample(p, label)))
                    .collect(),
                Err(e) => vec![Err(BadSample::new(
                    dir.display().to_string(),
                    e.to_string(),
                ))],
            };
            items
        }))
    }

    /// The validation split: the images of `val_dir` in sorted order with labels from `labels`.
    /// An image the label file does not cover is a bad sample; a label file that does not match
    /// the folder (count, unknown wnid) is an error.
    pub fn val(&self, val_dir: &Path, labels: &ValLabels) -> Result<Vec<SourceItem>> {
        let files: Vec<PathBuf> = sorted_dir(val_dir)?
            .into_iter()
            .filter(|p| is_image(p))
            .collect();
        let stem = |p: &Path| {
            p.file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        };
        let by_order = |file: &Path, wnids: Vec<String>| -> Result<Vec<SourceItem>> {
            if wnids.len() != files.len() {
                return Err(DataError::corrupt(
                    file,
                    format!(
                        "{} labels for {} images in {}",
                        wnids.len(),
                        files.len(),
                        val_dir.display()
                    ),
                ));
            }
            files
                .iter()
                .zip(wnids)
                .map(|(p, w)| Ok(Ok(self.sample(p.clone(), self.known(&w, file)?))))
                .collect()
        };
        match labels {
            ValLabels::LocSolution(csv) => {
                let table = read_loc_solution(csv)?;
                files
                    .iter()
                    .map(|p| match table.get(&stem(p)) {
                        Some(w) => Ok(Ok(self.sample(p.clone(), self.known(w, csv)?))),
                        None => Ok(Err(BadSample::new(
                            p.display().to_string(),
                            format!("no label in {}", csv.display()),
                        ))),
                    })
                    .collect()
            }
            ValLabels::WnidPerLine(file) => {
                let wnids = read_text(file)?
                    .lines()
                    .map(|l| l.trim().to_string())
                    .filter(|l| !l.is_empty())
                    .collect();
                by_order(file, wnids)
            }
            ValLabels::DevkitIds {
                ground_truth,
                synsets,
            } => {
                let ids: Vec<String> = read_text(synsets)?
                    .lines()
                    .map(|l| l.trim().to_string())
                    .filter(|l| !l.is_empty())
                    .collect();
                let mut wnids = Vec::new();
                for (i, line) in read_text(ground_truth)?.lines().enumerate() {
                    if line.trim().is_empty() {
                        continue;
                    }
                    let id: usize = line.trim().parse().map_err(|_| {
                        DataError::corrupt(ground_truth, format!("line {}: not an ID", i + 1))
                    })?;
                    let w = id.checked_sub(1).and_then(|i| ids.get(i)).ok_or_else(|| {
                        DataError::corrupt(
                            ground_truth,
                            format!("line {}: ID {id} outside 1..={}", i + 1, ids.len()),
                        )
                    })?;
                    wnids.push(w.clone());
                }
                by_order(ground_truth, wnids)
            }
        }
    }

    fn known(&self, wnid: &str, file: &Path) -> Result<i64> {
        self.label_of(wnid)
            .ok_or_else(|| DataError::corrupt(file, format!("{wnid} is not in the synset mapping")))
    }
}

/// `ImageId -> first wnid of PredictionString` from `LOC_val_solution.csv`.
fn read_loc_solution(csv: &Path) -> Result<HashMap<String, String>> {
    let mut table = HashMap::new();
    for (i, line) in read_text(csv)?.lines().enumerate() {
        if i == 0 && line.starts_with("ImageId") {
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let parsed = line
            .split_once(',')
            .and_then(|(id, pred)| Some((id.trim(), pred.split_whitespace().next()?)));
        let (id, wnid) = parsed.ok_or_else(|| {
            DataError::corrupt(
                csv,
                format!("line {}: expected 'ImageId,<wnid> ...'", i + 1),
            )
        })?;
        table.insert(id.to_string(), wnid.to_string());
    }
    Ok(table)
}
