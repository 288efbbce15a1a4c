//! diffusers' `AutoencoderKL` loaded from its folder: encoder, optional `quant_conv` (1x1 over
//! the moments), decoder, optional `post_quant_conv`, and the map between raw latents and the
//! model space the diffusion model trains in.

use super::coder::{Decoder, Encoder};
use super::config::AutoencoderKLConfig;
use crate::autoencoders::fingerprint::files_sha256;
use crate::autoencoders::interface::{check_latents, check_pixels, to_model, Autoencoder};
use crate::autoencoders::posterior::Posterior;
use crate::error::Result;
use crate::nn::Conv2d;
use crate::weights::{self, StateDict, DIFFUSERS_WEIGHTS};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::{nn, Device, Kind, Tensor};

/// The networks of an `AutoencoderKL`, built under one VarStore root at diffusers' keys.
#[derive(Debug)]
struct Networks {
    encoder: Encoder,
    quant_conv: Option<Conv2d>,
    decoder: Decoder,
    post_quant_conv: Option<Conv2d>,
}

impl Networks {
    fn new(p: &nn::Path, c: &AutoencoderKLConfig, config_path: &Path) -> Result<Self> {
        let act = c.validate(config_path)?;
        let l = c.latent_channels;
        Ok(Networks {
            encoder: Encoder::new(&(p / "encoder"), c, act)?,
            quant_conv: if c.use_quant_conv {
                Some(Conv2d::pointwise(&(p / "quant_conv"), 2 * l, 2 * l, true)?)
            } else {
                None
            },
            decoder: Decoder::new(&(p / "decoder"), c, act)?,
            post_quant_conv: if c.use_post_quant_conv {
                Some(Conv2d::pointwise(&(p / "post_quant_conv"), l, l, true)?)
            } else {
                None
            },
        })
    }
}

/// The state-dict keys and shapes an `AutoencoderKL` of `config` has (checks a key layout
/// without any weights; builds the model once in bfloat16 on the CPU).
pub fn parameter_shapes(config: &AutoencoderKLConfig) -> Result<BTreeMap<String, Vec<i64>>> {
    let mut vs = nn::VarStore::new(Device::Cpu);
    vs.set_kind(Kind::BFloat16);
    Networks::new(&vs.root(), config, Path::new("<config>"))?;
    Ok(vs
        .variables()
        .into_iter()
        .map(|(k, v)| (k, v.size()))
        .collect())
}

/// Renames the attention keys of diffusers folders saved before its `Attention` rewrite
/// (`query`, `key`, `value`, `proj_attn`) as diffusers itself does on load.
fn upgrade_attention_keys(state: &mut StateDict) {
    const OLD_TO_NEW: [(&str, &str); 4] = [
        (".query.", ".to_q."),
        (".key.", ".to_k."),
        (".value.", ".to_v."),
        (".proj_attn.", ".to_out.0."),
    ];
    let old: Vec<String> = state
        .keys()
        .filter(|k| k.contains(".mid_block.attentions."))
        .filter(|k| OLD_TO_NEW.iter().any(|(o, _)| k.contains(o)))
        .cloned()
        .collect();
    for key in old {
        let new = OLD_TO_NEW
            .iter()
            .fold(key.clone(), |k, (o, n)| k.replace(o, n));
        if let Some(t) = state.remove(&key) {
            state.insert(new, t);
        }
    }
}

/// A loaded diffusers `AutoencoderKL` (SD3, SDXL, SD 1.x VAEs and any config of the same
/// family). Weights are frozen; every forward runs under `no_grad`.
#[derive(Debug)]
pub struct AutoencoderKL {
    vs: nn::VarStore,
    nets: Networks,
    config: AutoencoderKLConfig,
    /// Per-channel raw-to-model-space maps `[1, C, 1, 1]`, float32.
    shift: Tensor,
    scale: Tensor,
    compute_kind: Kind,
    /// `config.json` and the weight files, for [`Autoencoder::weights_sha256`].
    files: Vec<PathBuf>,
}

impl AutoencoderKL {
    /// Loads a diffusers folder (`config.json` + `diffusion_pytorch_model.safetensors`, or
    /// shards listed in `diffusion_pytorch_model.safetensors.index.json`) on `device`, with
    /// weights in `kind`, except that `Kind::Half` becomes float32 when the config says
    /// `force_upcast` (as diffusers' pipelines do). Errors name the config field or every
    /// missing, unexpected and mis-shaped key.
    pub fn load(dir: &Path, kind: Kind, device: Device) -> Result<Self> {
        let config_path = weights::require_file(dir, weights::CONFIG_FILE)?;
        let config: AutoencoderKLConfig = weights::read_config(dir)?;
        let compute_kind = if kind == Kind::Half && config.force_upcast {
            Kind::Float
        } else {
            kind
        };
        let mut vs = nn::VarStore::new(device);
        vs.set_kind(compute_kind);
        let nets = Networks::new(&vs.root(), &config, &config_path)?;
        vs.freeze();
        let mut state = weights::read_folder_named(dir, DIFFUSERS_WEIGHTS, compute_kind, device)?;
        upgrade_attention_keys(&mut state);
        weights::copy_into(&vs, &state, &[], dir)?;
        let mut files = weights::weight_files(dir, DIFFUSERS_WEIGHTS)?;
        files.push(config_path);
        let (shift, scale) = config.latent_normalization();
        let channel_map = |v: Vec<f64>| -> Result<Tensor> {
            Ok(Tensor::f_from_slice(&v)?
                .f_to_kind(Kind::Float)?
                .f_view([1, -1, 1, 1].as_slice())?
                .f_to_device(device)?)
        };
        Ok(AutoencoderKL {
            vs,
            nets,
            shift: channel_map(shift)?,
            scale: channel_map(scale)?,
            config,
            compute_kind,
            files,
        })
    }

    pub fn config(&self) -> &AutoencoderKLConfig {
        &self.config
    }

    /// The kind the weights and activations are in.
    pub fn compute_kind(&self) -> Kind {
        self.compute_kind
    }

    /// The posterior over raw latents (diffusers' `latent_dist`: mean and
    /// `exp(0.5 clamp(logvar, -30, 20))`), float32.
    pub fn raw_posterior(&self, pixels: &Tensor) -> Result<Posterior> {
        check_pixels(
            "AutoencoderKL",
            pixels,
            self.config.in_channels,
            self.config.downsample_factor(),
        )?;
        tch::no_grad(|| {
            let x = to_model(pixels, self.vs.device(), self.compute_kind)?;
            let mut moments = self.nets.encoder.forward(&x)?;
            if let Some(conv) = &self.nets.quant_conv {
                moments = conv.forward(&moments)?;
            }
            let moments = moments.f_to_kind(Kind::Float)?;
            let halves = moments.f_chunk(2, 1)?;
            let std = halves[1].f_clamp(-30.0, 20.0)?.f_mul_scalar(0.5)?.f_exp()?;
            Ok(Posterior {
                mean: halves[0].shallow_clone(),
                std,
            })
        })
    }

    /// Pixels from raw latents (`vae.decode(z).sample`), float32, not clamped.
    pub fn decode_raw(&self, raw: &Tensor) -> Result<Tensor> {
        check_latents("AutoencoderKL", raw, self.config.latent_channels)?;
        tch::no_grad(|| {
            let mut z = to_model(raw, self.vs.device(), self.compute_kind)?;
            if let Some(conv) = &self.nets.post_quant_conv {
                z = conv.forward(&z)?;
            }
            Ok(self.nets.decoder.forward(&z)?.f_to_kind(Kind::Float)?)
        })
    }
}

impl Autoencoder for AutoencoderKL {
    fn name(&self) -> &str {
        "kl"
    }
    fn latent_channels(&self) -> i64 {
        self.config.latent_channels
    }
    fn downsample_factor(&self) -> i64 {
        self.config.downsample_factor()
    }
    /// Covers `config.json` too: its scaling and shift change the model-space latents.
    fn weights_sha256(&self) -> Result<String> {
        files_sha256(&self.files)
    }
    fn device(&self) -> Device {
        self.vs.device()
    }
    fn encode(&self, pixels: &Tensor) -> Result<Posterior> {
        let raw = self.raw_posterior(pixels)?;
        tch::no_grad(|| {
            Ok(Posterior {
                mean: raw.mean.f_sub(&self.shift)?.f_mul(&self.scale)?,
                std: raw.std.f_mul(&self.scale)?,
            })
        })
    }
    fn decode(&self, latents: &Tensor) -> Result<Tensor> {
        check_latents("AutoencoderKL", latents, self.config.latent_channels)?;
        let raw = tch::no_grad(|| -> Result<Tensor> {
            let z = to_model(latents, self.vs.device(), Kind::Float)?;
            Ok(z.f_div(&self.scale)?.f_add(&self.shift)?)
        })?;
        AutoencoderKL::decode_raw(self, &raw)
    }
    fn latent_normalization(&self) -> (Vec<f64>, Vec<f64>) {
        self.config.latent_normalization()
    }
    fn encode_raw(&self, pixels: &Tensor) -> Result<Posterior> {
        self.raw_posterior(pixels)
    }
    fn decode_raw(&self, z: &Tensor) -> Result<Tensor> {
        AutoencoderKL::decode_raw(self, z)
    }
}
