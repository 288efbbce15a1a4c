//! The frozen networks of a precompute: the autoencoder (raw posterior moments) and, optionally,
//! the text encoder (fp16 context and pooled vectors), with what the manifest records of them.

use super::config::PrecomputeConfig;
use crate::error::{DataError, Result};
use crate::shards::{AutoencoderInfo, TextEmbeddingInfo};
use flowscale_encoders::autoencoders::{Autoencoder, AutoencoderSpec};
use flowscale_encoders::text::{TextEncoder, TextEncoderConfig};
use std::path::PathBuf;
use tch::Device;

pub struct TextStage {
    pub encoder: TextEncoder,
    /// The config file, for the manifest and the fingerprint.
    pub config_path: PathBuf,
    pub config_text: String,
    pub batch_size: usize,
}

pub struct Encoders {
    pub autoencoder: Box<dyn Autoencoder>,
    pub info: AutoencoderInfo,
    pub text: Option<TextStage>,
    pub batch_size: usize,
}

/// The autoencoder `cfg` names, loaded on `device`, with its spec.
pub fn load_autoencoder(
    cfg: &PrecomputeConfig,
    device: Device,
) -> Result<(AutoencoderSpec, Box<dyn Autoencoder>)> {
    let a = &cfg.autoencoder;
    let spec = a.spec().map_err(DataError::Invalid)?;
    let autoencoder = spec.load(a.dtype.kind(), device)?;
    Ok((spec, autoencoder))
}

impl Encoders {
    /// Loads the networks `cfg` names on `device`.
    pub fn load(cfg: &PrecomputeConfig, device: Device) -> Result<Self> {
        let (spec, autoencoder) = load_autoencoder(cfg, device)?;
        let name = spec
            .path()
            .map_or_else(|| "identity".to_owned(), |p| p.display().to_string());
        let (shift_factor, scaling_factor) =
            autoencoder.uniform_normalization().ok_or_else(|| {
                DataError::Invalid(format!(
                    "autoencoder {name}: per-channel latents_mean/latents_std; the shard manifest \
                     records one scaling and shift factor for all channels"
                ))
            })?;
        let info = AutoencoderInfo {
            kind: spec.kind_name().to_owned(),
            weights_sha256: match spec {
                AutoencoderSpec::Identity => None,
                _ => Some(autoencoder.weights_sha256()?),
            },
            name,
            latent_channels: autoencoder.latent_channels(),
            downsample_factor: autoencoder.downsample_factor(),
            scaling_factor,
            shift_factor,
        };
        let text = match &cfg.text {
            None => None,
            Some(t) => {
                let config_text =
                    std::fs::read_to_string(&t.config).map_err(|e| DataError::io(&t.config, e))?;
                let text_cfg = TextEncoderConfig::from_toml(&config_text, &t.config)?;
                Some(TextStage {
                    encoder: TextEncoder::load(&text_cfg, device)?,
                    config_path: t.config.clone(),
                    config_text,
                    batch_size: t.batch_size,
                })
            }
        };
        Ok(Self {
            autoencoder,
            info,
            text,
            batch_size: cfg.autoencoder.batch_size,
        })
    }

    /// What the manifest records of the text embeddings.
    pub fn text_info(&self) -> Option<TextEmbeddingInfo> {
        self.text.as_ref().map(|t| {
            let (tokens, width, pooled) = t.encoder.shapes();
            TextEmbeddingInfo {
                encoder: t.config_path.display().to_string(),
                context_shape: [tokens, width],
                pooled_shape: [pooled],
                sources: t.encoder.source_spans(),
            }
        })
    }
}
