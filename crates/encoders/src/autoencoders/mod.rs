//! Image autoencoders behind one interface (issue #5): [`Autoencoder`] maps pixels in [-1, 1]
//! to a [`Posterior`] over model-space latents and back. Implementations: diffusers'
//! [`AutoencoderKL`] (SD3 / SDXL / SD 1.x VAEs, loaded from diffusers folders), [`Taef2`] (a
//! pretrained tiny autoencoder) and [`IdentityAutoencoder`] (pixel space); [`AutoencoderSpec`]
//! picks one from a config. [`Autoencoder::weights_sha256`] identifies the weights so latent
//! caches made with other weights can be refused.

pub mod fingerprint;
pub mod identity;
pub mod interface;
pub mod kl;
pub mod posterior;
pub mod spec;
pub mod taef2;

pub use identity::IdentityAutoencoder;
pub use interface::Autoencoder;
pub use kl::{AutoencoderKL, AutoencoderKLConfig};
pub use posterior::Posterior;
pub use spec::AutoencoderSpec;
pub use taef2::Taef2;
