//! Which autoencoder a run uses, as written in precompute and training configs:
//!
//! ```toml
//! [autoencoder]
//! kind = "kl"                  # "kl" | "taef2" | "identity"
//! path = "/models/sd3/vae"     # diffusers folder (kl) or TAEF2 folder (taef2)
//! ```

use super::identity::IdentityAutoencoder;
use super::interface::Autoencoder;
use super::kl::AutoencoderKL;
use super::taef2::Taef2;
use crate::error::Result;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use tch::{Device, Kind};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum AutoencoderSpec {
    /// A diffusers `AutoencoderKL` folder (SD3, SDXL, SD 1.x VAEs).
    Kl { path: PathBuf },
    /// A folder with `taef2_encoder.safetensors` and `taef2_decoder.safetensors`.
    Taef2 { path: PathBuf },
    /// Pixel space.
    Identity,
}

impl AutoencoderSpec {
    /// The kind as written in configs (and returned by [`Autoencoder::name`]).
    pub fn kind_name(&self) -> &'static str {
        match self {
            AutoencoderSpec::Kl { .. } => "kl",
            AutoencoderSpec::Taef2 { .. } => "taef2",
            AutoencoderSpec::Identity => "identity",
        }
    }

    /// Loads the autoencoder with weights in `kind` on `device`.
    pub fn load(&self, kind: Kind, device: Device) -> Result<Box<dyn Autoencoder>> {
        Ok(match self {
            AutoencoderSpec::Kl { path } => Box::new(AutoencoderKL::load(path, kind, device)?),
            AutoencoderSpec::Taef2 { path } => Box::new(Taef2::load(path, kind, device)?),
            AutoencoderSpec::Identity => Box::new(IdentityAutoencoder::new(device)),
        })
    }
}
