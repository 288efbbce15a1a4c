//! diffusers' `AutoencoderKL`: the SD3 VAE (16 latent channels, scale 1.5305, shift 0.0609) and
//! the SDXL / SD 1.x VAEs (4 channels, quant convs) by config.

mod blocks;
mod coder;
pub mod config;
pub mod model;

pub use config::{AutoencoderKLConfig, KlActivation};
pub use model::{parameter_shapes, AutoencoderKL};
