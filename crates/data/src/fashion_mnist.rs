//! Fashion-MNIST (Xiao et al. 2017) from its IDX files, as installed by the Debian package
//! `dataset-fashion-mnist` under [`DEBIAN_DIR`]: 60k training and 10k test images, 28x28 grey,
//! ten classes.

use crate::error::{DataError, Result};
use crate::idx::read_idx;
use crate::labeled_images::LabeledImages;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// Where `dataset-fashion-mnist` puts the files.
pub const DEBIAN_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Class names in label order (the dataset's README).
pub const CLASS_NAMES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Which file pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

impl Split {
    fn prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }
}

/// The two files of a split in `dir`, preferring the gzip names the upstream release uses.
pub fn split_files(dir: &Path, split: Split) -> (PathBuf, PathBuf) {
    let pick = |stem: String| {
        let gz = dir.join(format!("{stem}.gz"));
        if gz.exists() {
            gz
        } else {
            dir.join(stem)
        }
    };
    (
        pick(format!("{}-images-idx3-ubyte", split.prefix())),
        pick(format!("{}-labels-idx1-ubyte", split.prefix())),
    )
}

/// Loads a split as u8 `[N, 1, 28, 28]` images and i64 labels.
pub fn load(dir: &Path, split: Split) -> Result<LabeledImages> {
    let (image_path, label_path) = split_files(dir, split);
    if !image_path.exists() {
        return Err(DataError::io(
            &image_path,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "Fashion-MNIST not found (install the Debian package dataset-fashion-mnist, \
                 which scripts/setup does, or point data.path at a folder holding the four IDX \
                 files)",
            ),
        ));
    }
    let images = read_idx(&image_path)?;
    let labels = read_idx(&label_path)?;
    if images.dims.len() != 3 {
        return Err(DataError::corrupt(
            &image_path,
            format!("expected [N, H, W] images, found dims {:?}", images.dims),
        ));
    }
    if labels.dims.len() != 1 || labels.dims[0] != images.dims[0] {
        return Err(DataError::corrupt(
            &label_path,
            format!(
                "expected {} labels, found dims {:?}",
                images.dims[0], labels.dims
            ),
        ));
    }
    if let Some(bad) = labels
        .data
        .iter()
        .find(|&&l| l as usize >= CLASS_NAMES.len())
    {
        return Err(DataError::corrupt(
            &label_path,
            format!("label {bad} is not one of the 10 classes"),
        ));
    }
    let (n, h, w) = (
        images.dims[0] as i64,
        images.dims[1] as i64,
        images.dims[2] as i64,
    );
    let pixels = Tensor::f_from_slice(&images.data)?.f_view([n, 1, h, w].as_slice())?;
    let label_tensor = Tensor::f_from_slice(&labels.data)?.f_to_kind(Kind::Int64)?;
    LabeledImages::new(
        pixels,
        label_tensor,
        CLASS_NAMES.iter().map(|s| s.to_string()).collect(),
    )
}
