//! An in-memory, class-labelled image dataset (u8 pixels), the form small pixel-space datasets
//! such as Fashion-MNIST take before they reach the model.

use crate::error::{DataError, Result};
use tch::{Kind, Tensor};

/// Images as u8 `[N, C, H, W]` with one class label each.
#[derive(Debug)]
pub struct LabeledImages {
    /// u8 pixels, `[N, C, H, W]`.
    pub images: Tensor,
    /// Class indices, i64 `[N]`, each in `0..class_names.len()`.
    pub labels: Tensor,
    pub class_names: Vec<String>,
}

impl LabeledImages {
    /// Checks shapes, kinds and label range.
    pub fn new(images: Tensor, labels: Tensor, class_names: Vec<String>) -> Result<Self> {
        if images.dim() != 4 || images.kind() != Kind::Uint8 {
            return Err(DataError::Invalid(format!(
                "images must be u8 [N, C, H, W], got {:?} {:?}",
                images.kind(),
                images.size()
            )));
        }
        if labels.dim() != 1 || labels.size()[0] != images.size()[0] || labels.kind() != Kind::Int64
        {
            return Err(DataError::Invalid(format!(
                "labels must be i64 [{}], got {:?} {:?}",
                images.size()[0],
                labels.kind(),
                labels.size()
            )));
        }
        if labels.numel() > 0 {
            let (lo, hi) = (
                labels.f_min()?.int64_value(&[]),
                labels.f_max()?.int64_value(&[]),
            );
            if lo < 0 || hi >= class_names.len() as i64 {
                return Err(DataError::Invalid(format!(
                    "labels span {lo}..={hi} but there are {} class names",
                    class_names.len()
                )));
            }
        }
        Ok(Self {
            images,
            labels,
            class_names,
        })
    }

    pub fn len(&self) -> usize {
        self.images.size()[0] as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `[C, H, W]` of one image.
    pub fn image_shape(&self) -> [i64; 3] {
        let s = self.images.size();
        [s[1], s[2], s[3]]
    }

    /// The first `n` samples (a fixed held-out subset for validation and sample grids).
    pub fn head(&self, n: usize) -> Result<Self> {
        let n = n.min(self.len()) as i64;
        Ok(Self {
            images: self.images.f_narrow(0, 0, n)?,
            labels: self.labels.f_narrow(0, 0, n)?,
            class_names: self.class_names.clone(),
        })
    }

    /// The samples at `indices` (i64 `[B]`): u8 images and labels.
    pub fn select(&self, indices: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((
            self.images.f_index_select(0, indices)?,
            self.labels.f_index_select(0, indices)?,
        ))
    }
}
