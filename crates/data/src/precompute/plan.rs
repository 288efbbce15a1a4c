//! The work of a precompute: the source listed once, in a fixed order, and cut into units that
//! each become one shard file. A unit's content depends only on the config, so any process can
//! compute any unit (`--shard-index i --num-shards n` takes every n-th), a finished unit is never
//! redone, and a killed unit is redone to the same bytes.

use super::config::{PrecomputeConfig, SourceConfig, ValLabelsFormat};
use crate::error::{DataError, Result};
use crate::images::RgbImage;
use crate::shards::ShardSplit;
use crate::sources::{
    read_emoji, read_image_folder, with_sidecar_captions, CaptionPolicy, FolderOptions, ImageNet,
    ImageSource, Sample, SourceItem, ValLabels, WebDatasetImages,
};
use flowscale_core::FlowRng;
use std::path::PathBuf;

/// The samples of one unit.
#[derive(Debug)]
pub enum UnitItems {
    /// Listed samples (and entries the reader already had to skip).
    Listed(Vec<SourceItem>),
    /// One input tar shard, streamed.
    Tar(PathBuf),
}

/// One shard to write.
#[derive(Debug)]
pub struct Unit {
    pub split: ShardSplit,
    /// The shard's file name, `train-000000.tar`.
    pub file: String,
    pub items: UnitItems,
}

impl Unit {
    /// Source entries in the unit, when known without reading it.
    pub fn listed_len(&self) -> Option<usize> {
        match &self.items {
            UnitItems::Listed(items) => Some(items.len()),
            UnitItems::Tar(_) => None,
        }
    }

    /// The unit's samples in order; a streamed tar is read for the `further` caption fields
    /// (listed samples were read for them when listed).
    pub fn iter(
        &self,
        policy: CaptionPolicy,
        further: &[String],
    ) -> Box<dyn Iterator<Item = SourceItem> + '_> {
        match &self.items {
            UnitItems::Listed(items) => Box::new(items.iter().cloned()),
            UnitItems::Tar(path) => Box::new(
                WebDatasetImages::new(vec![path.clone()], policy)
                    .with_caption_fields(further.to_vec()),
            ),
        }
    }
}

/// Which share of the units this process computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardShare {
    pub index: usize,
    pub count: usize,
}

impl ShardShare {
    /// Whether unit `i` is this process's: every `count`-th unit, from `index`.
    pub fn owns(&self, i: usize) -> bool {
        i % self.count == self.index
    }
}

impl Default for ShardShare {
    fn default() -> Self {
        Self { index: 0, count: 1 }
    }
}

/// Every unit of a precompute, train first, and what the samples carry.
#[derive(Debug)]
pub struct Plan {
    pub units: Vec<Unit>,
    /// Class names by label; empty when the source has no labels.
    pub class_names: Vec<String>,
    pub has_captions: bool,
}

impl Plan {
    /// Lists the source of `cfg` and cuts it into units.
    pub fn new(cfg: &PrecomputeConfig) -> Result<Self> {
        let per_shard = cfg.output.samples_per_shard;
        let seed = cfg.output.shuffle_seed;
        let (train, val, class_names, has_captions) = match &cfg.source {
            SourceConfig::Imagenet {
                mapping,
                train_dir,
                val_dir,
                val_labels,
                val_labels_format,
                val_synsets,
                caption_seed,
                ..
            } => {
                let imagenet = ImageNet::from_mapping(mapping)?.with_caption_seed(*caption_seed);
                let train: Vec<SourceItem> = imagenet.train(train_dir)?.collect();
                let val = match (val_dir, val_labels) {
                    (Some(dir), Some(labels)) => {
                        let labels = match val_labels_format {
                            ValLabelsFormat::LocCsv => ValLabels::LocSolution(labels.clone()),
                            ValLabelsFormat::WnidLines => ValLabels::WnidPerLine(labels.clone()),
                            ValLabelsFormat::Devkit => ValLabels::DevkitIds {
                                ground_truth: labels.clone(),
                                synsets: val_synsets.clone().expect("validated"),
                            },
                        };
                        imagenet.val(dir, &labels)?
                    }
                    _ => Vec::new(),
                };
                let names = (0..imagenet.num_classes() as i64)
                    .map(|l| imagenet.class_names(l)[0].clone())
                    .collect();
                (listed(train, seed), listed(val, seed), names, true)
            }
            SourceConfig::Webdataset {
                path,
                captions_optional,
                val_shards,
                ..
            } => {
                let mut tars = WebDatasetImages::shards_in(path)?;
                if *val_shards >= tars.len() {
                    return Err(DataError::Invalid(format!(
                        "source.val_shards = {val_shards} leaves no training shard of the {} in {}",
                        tars.len(),
                        path.display()
                    )));
                }
                let val = tars.split_off(tars.len() - val_shards);
                let units = |tars: Vec<PathBuf>| tars.into_iter().map(UnitItems::Tar).collect();
                let units = (units(tars), units(val));
                return Ok(Self::from_units(units, Vec::new(), !captions_optional));
            }
            SourceConfig::Folder {
                path,
                labels_from_subfolders,
                ..
            } => {
                let options = FolderOptions {
                    labels_from_subfolders: *labels_from_subfolders,
                };
                let (items, classes) = read_image_folder(path, options)?;
                // Captioned when every image has a sidecar `.txt` (an unreadable one makes a
                // bad sample), or when further fields are read: then an image without its
                // `.txt` is a bad sample.
                let further = cfg.source.further_caption_fields();
                let captioned = !further.is_empty()
                    || items
                        .iter()
                        .all(|s| s.as_ref().map_or(true, |s| s.caption.is_some()));
                let items = items
                    .into_iter()
                    .map(|s| s.and_then(|s| with_sidecar_captions(s, further)))
                    .collect();
                let (train, val) = hold_out(items, seed, cfg.output.val_samples)?;
                (train, val, classes, captioned)
            }
            SourceConfig::Emoji { path, .. } => {
                let (samples, categories) = read_emoji(path)?;
                let (train, val) = hold_out(ok_items(samples), seed, cfg.output.val_samples)?;
                (train, val, categories, true)
            }
            SourceConfig::FashionMnist { path, .. } => {
                use crate::fashion_mnist::{load, Split};
                let train_set = load(path, Split::Train)?;
                let names = train_set.class_names.clone();
                let train = idx_samples(&train_set, "train")?;
                let val = idx_samples(&load(path, Split::Test)?, "t10k")?;
                (listed(train, seed), listed(val, seed), names, false)
            }
        };
        let chunk = |items: Vec<SourceItem>| -> Vec<UnitItems> {
            let mut items = items.into_iter().peekable();
            let mut units = Vec::new();
            while items.peek().is_some() {
                units.push(UnitItems::Listed(items.by_ref().take(per_shard).collect()));
            }
            units
        };
        if train.is_empty() {
            return Err(DataError::Invalid(format!(
                "the {} source lists no training samples",
                cfg.source.kind_name()
            )));
        }
        Ok(Self::from_units(
            (chunk(train), chunk(val)),
            class_names,
            has_captions,
        ))
    }

    fn from_units(
        (train, val): (Vec<UnitItems>, Vec<UnitItems>),
        class_names: Vec<String>,
        has_captions: bool,
    ) -> Self {
        let named = |split: ShardSplit, items: Vec<UnitItems>| {
            items.into_iter().enumerate().map(move |(i, items)| Unit {
                split,
                file: format!("{}-{i:06}.tar", split.name()),
                items,
            })
        };
        let units = named(ShardSplit::Train, train)
            .chain(named(ShardSplit::Val, val))
            .collect();
        Self {
            units,
            class_names,
            has_captions,
        }
    }

    /// The units `share` computes.
    pub fn assigned(&self, share: ShardShare) -> impl Iterator<Item = &Unit> {
        self.units
            .iter()
            .enumerate()
            .filter(move |(i, _)| share.owns(*i))
            .map(|(_, u)| u)
    }
}

fn ok_items(samples: Vec<Sample>) -> Vec<SourceItem> {
    samples.into_iter().map(Ok).collect()
}

/// The listing permuted by `seed` (kept in order without one).
fn listed(mut items: Vec<SourceItem>, seed: Option<u64>) -> Vec<SourceItem> {
    if let Some(seed) = seed {
        FlowRng::new(seed).shuffle(&mut items);
    }
    items
}

/// Permutes, then takes the first `val` entries as the val split.
fn hold_out(
    items: Vec<SourceItem>,
    seed: Option<u64>,
    val: usize,
) -> Result<(Vec<SourceItem>, Vec<SourceItem>)> {
    let mut items = listed(items, seed);
    if val >= items.len() && val > 0 {
        return Err(DataError::Invalid(format!(
            "output.val_samples = {val} leaves no training sample of the {} listed",
            items.len()
        )));
    }
    let train = items.split_off(val);
    Ok((train, items))
}

/// IDX images (u8 `[N, C, H, W]`, grey or RGB) as decoded samples keyed `<prefix>_<index>`.
fn idx_samples(data: &crate::LabeledImages, prefix: &str) -> Result<Vec<SourceItem>> {
    let size = data.images.size();
    let (n, c, h, w) = (size[0], size[1], size[2] as usize, size[3] as usize);
    if c != 1 && c != 3 {
        return Err(DataError::Invalid(format!(
            "{prefix} images have {c} channels (1 or 3)"
        )));
    }
    // Interleaved RGB, grey replicated.
    let rgb = data
        .images
        .f_expand([n, 3, h as i64, w as i64], false)?
        .f_permute([0, 2, 3, 1])?
        .f_contiguous()?;
    let bytes = Vec::<u8>::try_from(rgb.f_flatten(0, -1)?)?;
    let labels = Vec::<i64>::try_from(&data.labels)?;
    let per = h * w * 3;
    bytes
        .chunks_exact(per)
        .zip(labels)
        .enumerate()
        .map(|(i, (pixels, label))| {
            let image = RgbImage::new(w, h, pixels.to_vec()).map_err(DataError::Invalid)?;
            Ok(Ok(Sample {
                key: format!("{prefix}_{i:05}"),
                image: ImageSource::Pixels(image),
                label: Some(label),
                caption: None,
                further_captions: Vec::new(),
            }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listing_order_is_fixed_by_the_seed_and_complete() {
        let items = |n: usize| -> Vec<SourceItem> {
            (0..n)
                .map(|i| Err(crate::BadSample::new(i.to_string(), "")))
                .collect()
        };
        let names = |v: Vec<SourceItem>| -> Vec<String> {
            v.into_iter().map(|i| i.unwrap_err().name).collect()
        };
        let a = names(listed(items(100), Some(7)));
        assert_eq!(a, names(listed(items(100), Some(7))));
        assert_ne!(a, names(listed(items(100), Some(8))));
        let kept = names(listed(items(100), None));
        assert_eq!(kept, (0..100).map(|i| i.to_string()).collect::<Vec<_>>());
        assert_ne!(a, kept);
        let mut sorted = a.clone();
        sorted.sort();
        let mut all = kept.clone();
        all.sort();
        assert_eq!(sorted, all);
    }

    #[test]
    fn units_are_assigned_round_robin() {
        let items = |n: usize| {
            (0..n)
                .map(|_| UnitItems::Listed(Vec::new()))
                .collect::<Vec<_>>()
        };
        let plan = Plan::from_units((items(5), items(2)), Vec::new(), false);
        let files = |i, n| {
            plan.assigned(ShardShare { index: i, count: n })
                .map(|u| u.file.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(files(0, 1).len(), 7);
        assert_eq!(files(1, 3), ["train-000001.tar", "train-000004.tar"]);
        assert_eq!(files(2, 3), ["train-000002.tar", "val-000000.tar"]);
        let mut all: Vec<String> = (0..3).flat_map(|i| files(i, 3)).collect();
        all.sort();
        assert_eq!(all, files(0, 1));
    }
}
