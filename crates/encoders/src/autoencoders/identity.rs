//! The identity autoencoder: training in pixel space through the same interface.

use super::fingerprint::files_sha256;
use super::interface::{check_latents, check_pixels, to_model, Autoencoder};
use super::posterior::Posterior;
use crate::error::Result;
use tch::{Device, Kind, Tensor};

/// Pixels are the latents: mean = pixels, std = 0, 3 channels, factor 1.
#[derive(Debug, Clone, Copy)]
pub struct IdentityAutoencoder {
    device: Device,
}

impl IdentityAutoencoder {
    pub fn new(device: Device) -> Self {
        IdentityAutoencoder { device }
    }
}

impl Autoencoder for IdentityAutoencoder {
    fn name(&self) -> &str {
        "identity"
    }
    fn latent_channels(&self) -> i64 {
        3
    }
    fn downsample_factor(&self) -> i64 {
        1
    }
    /// The digest of no files: every identity autoencoder is the same.
    fn weights_sha256(&self) -> Result<String> {
        files_sha256(&[])
    }
    fn device(&self) -> Device {
        self.device
    }
    fn encode(&self, pixels: &Tensor) -> Result<Posterior> {
        check_pixels("identity autoencoder", pixels, 3, 1)?;
        // A copy, so callers may modify the latents without touching their pixels.
        let mean = to_model(pixels, self.device, Kind::Float)?.f_detach_copy()?;
        let std = mean.f_zeros_like()?;
        Ok(Posterior { mean, std })
    }
    fn decode(&self, latents: &Tensor) -> Result<Tensor> {
        check_latents("identity autoencoder", latents, 3)?;
        Ok(to_model(latents, self.device, Kind::Float)?.f_detach_copy()?)
    }
    fn latent_normalization(&self) -> (Vec<f64>, Vec<f64>) {
        (vec![0.0; 3], vec![1.0; 3])
    }
    fn encode_raw(&self, pixels: &Tensor) -> Result<Posterior> {
        self.encode(pixels)
    }
    fn decode_raw(&self, z: &Tensor) -> Result<Tensor> {
        self.decode(z)
    }
}
