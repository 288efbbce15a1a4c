//! An embedding table.

use super::ZERO;
use crate::error::Result;
use tch::nn::Path;
use tch::Tensor;

/// An embedding table `[num, dim]` at `<path>.weight`.
#[derive(Debug)]
pub(crate) struct Embedding {
    pub(crate) weight: Tensor,
}

impl Embedding {
    pub(crate) fn new(path: &Path, num: i64, dim: i64) -> Result<Self> {
        Ok(Embedding {
            weight: path.f_var("weight", &[num, dim], ZERO)?,
        })
    }

    /// Looks up i64 ids of any shape.
    pub(crate) fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        Ok(Tensor::f_embedding(&self.weight, ids, -1, false, false)?)
    }
}
