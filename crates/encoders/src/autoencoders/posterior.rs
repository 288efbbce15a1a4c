//! The encoder's output: a diagonal Gaussian over model-space latents.

use crate::error::Result;
use tch::Tensor;

/// Posterior `N(mean, std^2)` over latents `[B, C, h, w]`: in model space (already shifted and
/// scaled, so the diffusion model sees `mean + std * noise`) from [`Autoencoder::encode`], raw
/// from [`Autoencoder::encode_raw`]. Deterministic autoencoders give `std = 0`. Both are float32.
///
/// [`Autoencoder::encode`]: super::Autoencoder::encode
/// [`Autoencoder::encode_raw`]: super::Autoencoder::encode_raw
#[derive(Debug)]
pub struct Posterior {
    pub mean: Tensor,
    pub std: Tensor,
}

impl Posterior {
    /// Concatenates posteriors along the batch dimension (the inverse of encoding in chunks).
    pub fn cat(parts: &[Posterior]) -> Result<Posterior> {
        let means: Vec<&Tensor> = parts.iter().map(|p| &p.mean).collect();
        let stds: Vec<&Tensor> = parts.iter().map(|p| &p.std).collect();
        Ok(Posterior {
            mean: Tensor::f_cat(&means, 0)?,
            std: Tensor::f_cat(&stds, 0)?,
        })
    }
}
