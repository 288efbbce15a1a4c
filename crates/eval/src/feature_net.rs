//! A feature network for FID: what the reference statistics and the result rows need to know of
//! it (name, weights hash, preprocessing) and its features of 8-bit images. Implemented by
//! [`crate::inception::FidInception`] (the default) and [`crate::clip_metric::ClipMetric`].

use crate::error::Result;
use tch::Tensor;

pub trait FeatureNet {
    /// The network's name in results and statistics provenance.
    fn name(&self) -> String;
    /// SHA-256 of the network's weights.
    fn weights_sha256(&self) -> String;
    /// The preprocessing, as recorded in results and provenance.
    fn resize_mode(&self) -> String;
    /// Features `[N, D]` (float32, CPU) of u8 images `[N, C, H, W]` (C = 1 or 3, one size), in
    /// batches of `batch_size`.
    fn features_u8(&self, images: &Tensor, batch_size: usize) -> Result<Tensor>;
}
