//! Dataset readers. Each yields, in a deterministic order, [`Sample`]s (or the [`BadSample`]s it
//! had to skip, so the caller can count them against the allowed bad fraction): ImageNet's
//! standard layout, WebDataset tar shards as img2dataset writes them (CC12M), any image folder,
//! and the `emoji-datasource-google` npm package.

pub mod emoji;
pub mod folder;
pub mod imagenet;
pub mod keys;
pub mod sidecar;
pub mod webdataset;

use crate::bad_samples::BadSample;
use crate::images::{decode_rgb, RgbImage};
use crate::shards::PRIMARY_CAPTION;
use std::borrow::Cow;
use std::path::PathBuf;

pub use emoji::read_emoji;
pub use folder::{read_image_folder, FolderOptions};
pub use imagenet::{ImageNet, ValLabels};
pub use keys::safe_key;
pub use sidecar::with_sidecar_captions;
pub use webdataset::{CaptionPolicy, WebDatasetImages};

/// Where a sample's encoded image is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// Already in memory (read from a tar shard).
    Bytes(Vec<u8>),
    /// A file, read when the sample is preprocessed (listing ImageNet must not read 140 GB).
    File(PathBuf),
    /// Already decoded pixels (datasets stored as raw arrays, such as IDX files).
    Pixels(RgbImage),
}

impl ImageSource {
    /// The encoded bytes; the error is a reason (the caller names the sample).
    pub fn bytes(&self) -> Result<Cow<'_, [u8]>, String> {
        match self {
            Self::Bytes(b) => Ok(Cow::Borrowed(b)),
            Self::File(p) => std::fs::read(p)
                .map(Cow::Owned)
                .map_err(|e| format!("{}: {e}", p.display())),
            Self::Pixels(_) => Err("the image is stored decoded, not as encoded bytes".into()),
        }
    }

    /// The decoded image.
    pub fn decode(&self) -> Result<Cow<'_, RgbImage>, String> {
        match self {
            Self::Pixels(image) => Ok(Cow::Borrowed(image)),
            _ => decode_rgb(&self.bytes()?).map(Cow::Owned),
        }
    }
}

/// One dataset sample before decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Unique within the dataset and WebDataset-safe: `[A-Za-z0-9_-]`, at most 64 characters.
    pub key: String,
    pub image: ImageSource,
    pub label: Option<i64>,
    /// The caption of field `txt`.
    pub caption: Option<String>,
    /// Captions of further fields (a synthetic caption beside the original one, for the caption
    /// study), in the order the source was asked for them.
    pub further_captions: Vec<FieldCaption>,
}

/// A caption of a field other than `txt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldCaption {
    pub field: String,
    pub text: String,
}

impl Sample {
    /// The caption of `field` (`txt` or a further one), when the sample has it.
    pub fn caption_of(&self, field: &str) -> Option<&str> {
        caption_of(&self.caption, &self.further_captions, field)
    }
}

/// The caption of `field` among a sample's `txt` caption and further captions.
pub(crate) fn caption_of<'a>(
    txt: &'a Option<String>,
    further: &'a [FieldCaption],
    field: &str,
) -> Option<&'a str> {
    if field == PRIMARY_CAPTION {
        txt.as_deref()
    } else {
        further
            .iter()
            .find(|c| c.field == field)
            .map(|c| c.text.as_str())
    }
}

/// What a reader yields: a sample, or one it skipped and why.
pub type SourceItem = Result<Sample, BadSample>;
