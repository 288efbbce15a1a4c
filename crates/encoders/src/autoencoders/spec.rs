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
    /// The spec of a `kind` as configs write it, with its weights folder: `kl` and `taef2` need
    /// one, `identity` has none. The error is `(field, reason)`, the field being `"kind"` or
    /// `"path"`, so a config can name its own key.
    pub fn new(
        kind: &str,
        path: Option<PathBuf>,
    ) -> std::result::Result<Self, (&'static str, String)> {
        match (kind, path) {
            ("identity", None) => Ok(AutoencoderSpec::Identity),
            ("identity", Some(_)) => Err((
                "path",
                "the identity autoencoder has no weights folder".into(),
            )),
            ("kl", Some(path)) => Ok(AutoencoderSpec::Kl { path }),
            ("taef2", Some(path)) => Ok(AutoencoderSpec::Taef2 { path }),
            ("kl" | "taef2", None) => {
                Err(("path", format!("kind {kind:?} needs its weights folder")))
            }
            (other, _) => Err((
                "kind",
                format!("unknown autoencoder kind {other:?} (kl, taef2, identity)"),
            )),
        }
    }

    /// The weights folder (none for identity).
    pub fn path(&self) -> Option<&PathBuf> {
        match self {
            AutoencoderSpec::Kl { path } | AutoencoderSpec::Taef2 { path } => Some(path),
            AutoencoderSpec::Identity => None,
        }
    }

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
