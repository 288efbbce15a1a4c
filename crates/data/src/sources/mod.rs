//! Dataset readers. Each yields, in a deterministic order, [`Sample`]s (or the [`BadSample`]s it
//! had to skip, so the caller can count them against the allowed bad fraction): ImageNet's
//! standard layout, WebDataset tar shards as img2dataset writes them (CC12M), any image folder,
//! and the `emoji-datasource-google` npm package.

pub mod emoji;
pub mod folder;
pub mod imagenet;
pub mod keys;
pub mod webdataset;

use crate::bad_samples::BadSample;
use crate::images::{decode_rgb, RgbImage};
use std::borrow::Cow;
use std::path::PathBuf;

pub use emoji::read_emoji;
pub use folder::{read_image_folder, FolderOptions};
pub use imagenet::{ImageNet, ValLabels};
pub use keys::safe_key;
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
    pub caption: Option<String>,
}

/// What a reader yields: a sample, or one it skipped and why.
pub type SourceItem = Result<Sample, BadSample>;
