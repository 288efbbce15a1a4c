//! The interface every autoencoder implements, with input checks and chunked batches.

use super::posterior::Posterior;
use crate::error::{EncoderError, Result};
use tch::{Device, Kind, Tensor};

/// An image autoencoder as the trainer and the latent precompute see it: pixels in [-1, 1]
/// `[B, 3, H, W]` to a posterior over model-space latents `[B, C, H/f, W/f]` and back. Both
/// directions run without gradients and return float32 on the model's device.
pub trait Autoencoder: Send {
    /// The kind, as in configs: `"kl"`, `"taef2"` or `"identity"`.
    fn name(&self) -> &str;
    /// Latent channels `C`.
    fn latent_channels(&self) -> i64;
    /// Spatial downsampling factor `f`.
    fn downsample_factor(&self) -> i64;
    /// Lowercase hex SHA-256 identifying the weights (and any config that changes the latents),
    /// recorded by latent caches so that latents from other weights are refused.
    fn weights_sha256(&self) -> Result<String>;
    /// Where the model runs; inputs are moved there.
    fn device(&self) -> Device;
    /// Posterior of `pixels` in [-1, 1] `[B, 3, H, W]`, H and W multiples of the factor.
    fn encode(&self, pixels: &Tensor) -> Result<Posterior>;
    /// Pixels (nominally in [-1, 1], not clamped) from model-space `latents` `[B, C, h, w]`.
    fn decode(&self, latents: &Tensor) -> Result<Tensor>;
    /// Per channel `(shift, scale)`: model-space latents are `(z - shift) * scale` of the raw
    /// latents `z` (SD3's VAE: 0.0609 and 1.5305 for all 16 channels).
    fn latent_normalization(&self) -> (Vec<f64>, Vec<f64>);
    /// The posterior over raw latents (diffusers' `latent_dist`), which latent caches store so
    /// that the normalization stays a recorded, visible step.
    fn encode_raw(&self, pixels: &Tensor) -> Result<Posterior>;
    /// Pixels from raw latents `z` (diffusers' `vae.decode(z)`), not clamped.
    fn decode_raw(&self, z: &Tensor) -> Result<Tensor>;

    /// The normalization as one `(shift, scale)` pair when every channel has the same one
    /// (what a shard manifest records); `None` for per-channel statistics.
    fn uniform_normalization(&self) -> Option<(f64, f64)> {
        let (shift, scale) = self.latent_normalization();
        let same = |v: &[f64]| v.iter().all(|x| *x == v[0]);
        (!shift.is_empty() && same(&shift) && same(&scale)).then(|| (shift[0], scale[0]))
    }

    /// [`Autoencoder::encode`] over at most `max_batch` images at a time (bounds the
    /// activation memory of large batches).
    fn encode_chunked(&self, pixels: &Tensor, max_batch: i64) -> Result<Posterior> {
        Posterior::cat(&map_chunks(pixels, max_batch, |c| self.encode(c))?)
    }

    /// [`Autoencoder::encode_raw`] over at most `max_batch` images at a time.
    fn encode_raw_chunked(&self, pixels: &Tensor, max_batch: i64) -> Result<Posterior> {
        Posterior::cat(&map_chunks(pixels, max_batch, |c| self.encode_raw(c))?)
    }

    /// [`Autoencoder::decode`] over at most `max_batch` latents at a time.
    fn decode_chunked(&self, latents: &Tensor, max_batch: i64) -> Result<Tensor> {
        Ok(Tensor::f_cat(
            &map_chunks(latents, max_batch, |c| self.decode(c))?,
            0,
        )?)
    }
}

/// `f` over the batch chunks of at most `max_batch` of `x`.
fn map_chunks<T>(x: &Tensor, max_batch: i64, f: impl Fn(&Tensor) -> Result<T>) -> Result<Vec<T>> {
    batch_chunks(x, max_batch)?.iter().map(f).collect()
}

fn batch_chunks(x: &Tensor, max_batch: i64) -> Result<Vec<Tensor>> {
    if max_batch < 1 {
        return Err(EncoderError::Input(format!(
            "chunk size must be at least 1, got {max_batch}"
        )));
    }
    let batch = *x.size().first().unwrap_or(&0);
    if batch == 0 {
        return Err(EncoderError::Input("empty batch".into()));
    }
    Ok(x.f_split(max_batch, 0)?)
}

/// Checks `pixels` is `[B, channels, H, W]` with H and W positive multiples of `factor` (`who`
/// names the autoencoder in the error).
pub(crate) fn check_pixels(who: &str, pixels: &Tensor, channels: i64, factor: i64) -> Result<()> {
    let s = pixels.size();
    let fits = |n: i64| n > 0 && n % factor == 0;
    if s.len() != 4 || s[0] == 0 || s[1] != channels || !fits(s[2]) || !fits(s[3]) {
        return Err(EncoderError::Input(format!(
            "{who} encodes pixels [B, {channels}, H, W] with B > 0 and H, W positive multiples \
             of {factor}, got {s:?}"
        )));
    }
    Ok(())
}

/// Checks `latents` is `[B, channels, h, w]`.
pub(crate) fn check_latents(who: &str, latents: &Tensor, channels: i64) -> Result<()> {
    let s = latents.size();
    if s.len() != 4 || s[0] == 0 || s[1] != channels {
        return Err(EncoderError::Input(format!(
            "{who} decodes latents [B, {channels}, h, w] with B > 0, got {s:?}"
        )));
    }
    Ok(())
}

/// `x` on `device` in `kind` (no copy when it already is).
pub(crate) fn to_model(x: &Tensor, device: Device, kind: Kind) -> Result<Tensor> {
    Ok(x.f_to_device(device)?.f_to_kind(kind)?)
}
