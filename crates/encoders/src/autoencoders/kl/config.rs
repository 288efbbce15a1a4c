//! diffusers' `AutoencoderKL` `config.json`, field for field, with the published presets of
//! the SD3, SDXL and SD 1.x VAEs and the checks that the model here can build it.

use crate::error::{EncoderError, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const DOWN_BLOCK: &str = "DownEncoderBlock2D";
pub const UP_BLOCK: &str = "UpDecoderBlock2D";

/// The fields of diffusers' `AutoencoderKL` config (defaults as in diffusers 0.35). Unknown
/// fields (`_diffusers_version`, `_name_or_path`) are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoencoderKLConfig {
    /// `AutoencoderKL` in diffusers' files; another class (`AutoencoderTiny`, ...) is refused.
    #[serde(
        rename = "_class_name",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub class_name: Option<String>,
    #[serde(default = "three")]
    pub in_channels: i64,
    #[serde(default = "three")]
    pub out_channels: i64,
    #[serde(default = "one_down")]
    pub down_block_types: Vec<String>,
    #[serde(default = "one_up")]
    pub up_block_types: Vec<String>,
    #[serde(default = "one_width")]
    pub block_out_channels: Vec<i64>,
    #[serde(default = "one")]
    pub layers_per_block: i64,
    #[serde(default = "silu")]
    pub act_fn: String,
    #[serde(default = "four")]
    pub latent_channels: i64,
    #[serde(default = "thirty_two")]
    pub norm_num_groups: i64,
    /// Tiling size in diffusers (an integer or a pair); unused here, kept for round trips.
    #[serde(default = "sample_size")]
    pub sample_size: serde_json::Value,
    #[serde(default = "sd1_scale")]
    pub scaling_factor: f64,
    #[serde(default)]
    pub shift_factor: Option<f64>,
    /// Per-channel latent statistics: when both are set, model-space latents are
    /// `(z - latents_mean) * scaling_factor / latents_std`, as diffusers' SDXL pipelines do.
    #[serde(default)]
    pub latents_mean: Option<Vec<f64>>,
    #[serde(default)]
    pub latents_std: Option<Vec<f64>>,
    /// diffusers runs these VAEs in float32 even in half-precision pipelines (float16
    /// overflows); the loader does the same for `Kind::Half`.
    #[serde(default = "yes")]
    pub force_upcast: bool,
    #[serde(default = "yes")]
    pub use_quant_conv: bool,
    #[serde(default = "yes")]
    pub use_post_quant_conv: bool,
    #[serde(default = "yes")]
    pub mid_block_add_attention: bool,
}

fn three() -> i64 {
    3
}
fn four() -> i64 {
    4
}
fn one() -> i64 {
    1
}
fn thirty_two() -> i64 {
    32
}
fn one_down() -> Vec<String> {
    vec![DOWN_BLOCK.into()]
}
fn one_up() -> Vec<String> {
    vec![UP_BLOCK.into()]
}
fn one_width() -> Vec<i64> {
    vec![64]
}
fn silu() -> String {
    "silu".into()
}
fn sample_size() -> serde_json::Value {
    32.into()
}
fn sd1_scale() -> f64 {
    0.18215
}
fn yes() -> bool {
    true
}

/// The activations diffusers' `get_activation` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KlActivation {
    Silu,
    Mish,
    Gelu,
    Relu,
}

impl KlActivation {
    pub fn from_diffusers(name: &str) -> Option<Self> {
        match name {
            "silu" | "swish" => Some(KlActivation::Silu),
            "mish" => Some(KlActivation::Mish),
            "gelu" => Some(KlActivation::Gelu),
            "relu" => Some(KlActivation::Relu),
            _ => None,
        }
    }

    pub(crate) fn apply(self, x: &tch::Tensor) -> Result<tch::Tensor> {
        Ok(match self {
            KlActivation::Silu => x.f_silu()?,
            KlActivation::Mish => x.f_mish()?,
            KlActivation::Gelu => x.f_gelu("none")?,
            KlActivation::Relu => x.f_relu()?,
        })
    }
}

impl AutoencoderKLConfig {
    /// The SD 1.x VAE (`stable-diffusion-v1-5` `vae/config.json`): 4 latent channels, scale
    /// 0.18215, quant convs.
    pub fn sd1() -> Self {
        AutoencoderKLConfig {
            class_name: Some("AutoencoderKL".into()),
            in_channels: 3,
            out_channels: 3,
            down_block_types: vec![DOWN_BLOCK.into(); 4],
            up_block_types: vec![UP_BLOCK.into(); 4],
            block_out_channels: vec![128, 256, 512, 512],
            layers_per_block: 2,
            act_fn: "silu".into(),
            latent_channels: 4,
            norm_num_groups: 32,
            sample_size: 512.into(),
            scaling_factor: 0.18215,
            shift_factor: None,
            latents_mean: None,
            latents_std: None,
            force_upcast: true,
            use_quant_conv: true,
            use_post_quant_conv: true,
            mid_block_add_attention: true,
        }
    }

    /// The SDXL VAE: the SD 1.x layout with scale 0.13025.
    pub fn sdxl() -> Self {
        AutoencoderKLConfig {
            sample_size: 1024.into(),
            scaling_factor: 0.13025,
            ..Self::sd1()
        }
    }

    /// The SD3 VAE: 16 latent channels, scale 1.5305, shift 0.0609, no quant convs.
    pub fn sd3() -> Self {
        AutoencoderKLConfig {
            latent_channels: 16,
            sample_size: 1024.into(),
            scaling_factor: 1.5305,
            shift_factor: Some(0.0609),
            use_quant_conv: false,
            use_post_quant_conv: false,
            ..Self::sd1()
        }
    }

    /// Spatial downsampling factor: 2 per block but the last.
    pub fn downsample_factor(&self) -> i64 {
        1 << (self.block_out_channels.len().max(1) - 1)
    }

    /// Per-channel `(shift, scale)` taking raw latents to model space,
    /// `z_model = (z - shift) * scale`.
    pub fn latent_normalization(&self) -> (Vec<f64>, Vec<f64>) {
        let c = self.latent_channels as usize;
        let shift = match &self.latents_mean {
            Some(m) => m.clone(),
            None => vec![self.shift_factor.unwrap_or(0.0); c],
        };
        let scale = match &self.latents_std {
            Some(s) => s.iter().map(|s| self.scaling_factor / s).collect(),
            None => vec![self.scaling_factor; c],
        };
        (shift, scale)
    }

    /// Checks that the model here builds this config; `path` names the config in errors.
    pub fn validate(&self, path: &Path) -> Result<KlActivation> {
        let bad = |message: String| Err(EncoderError::format(path, message));
        if let Some(class) = &self.class_name {
            if class != "AutoencoderKL" {
                return bad(format!(
                    "_class_name is {class:?}, expected \"AutoencoderKL\""
                ));
            }
        }
        let n = self.block_out_channels.len();
        if n == 0 {
            return bad("block_out_channels is empty".into());
        }
        if self.down_block_types.len() != n || self.up_block_types.len() != n {
            return bad(format!(
                "down_block_types ({}) and up_block_types ({}) must have one entry per \
                 block_out_channels entry ({n})",
                self.down_block_types.len(),
                self.up_block_types.len()
            ));
        }
        if let Some(t) = self.down_block_types.iter().find(|t| *t != DOWN_BLOCK) {
            return bad(format!(
                "down block type {t:?} is not supported (only {DOWN_BLOCK})"
            ));
        }
        if let Some(t) = self.up_block_types.iter().find(|t| *t != UP_BLOCK) {
            return bad(format!(
                "up block type {t:?} is not supported (only {UP_BLOCK})"
            ));
        }
        let positive = [
            ("in_channels", self.in_channels),
            ("out_channels", self.out_channels),
            ("layers_per_block", self.layers_per_block),
            ("latent_channels", self.latent_channels),
            ("norm_num_groups", self.norm_num_groups),
        ];
        if let Some((name, v)) = positive.iter().find(|(_, v)| *v < 1) {
            return bad(format!("{name} must be positive, got {v}"));
        }
        if let Some(w) = self
            .block_out_channels
            .iter()
            .find(|w| **w < 1 || **w % self.norm_num_groups != 0)
        {
            return bad(format!(
                "block_out_channels entry {w} is not a positive multiple of norm_num_groups {}",
                self.norm_num_groups
            ));
        }
        match (&self.latents_mean, &self.latents_std) {
            (None, None) => {}
            (Some(m), Some(s)) => {
                let c = self.latent_channels as usize;
                if m.len() != c || s.len() != c {
                    return bad(format!(
                        "latents_mean ({}) and latents_std ({}) need latent_channels ({c}) entries",
                        m.len(),
                        s.len()
                    ));
                }
                if s.iter().any(|s| *s <= 0.0) {
                    return bad("latents_std entries must be positive".into());
                }
                if self.shift_factor.is_some_and(|f| f != 0.0) {
                    return bad("shift_factor and latents_mean are both set".into());
                }
            }
            _ => return bad("latents_mean and latents_std must be set together".into()),
        }
        if self.scaling_factor <= 0.0 {
            return bad(format!(
                "scaling_factor must be positive, got {}",
                self.scaling_factor
            ));
        }
        KlActivation::from_diffusers(&self.act_fn).map_or_else(
            || bad(format!("act_fn {:?} is not supported", self.act_fn)),
            Ok,
        )
    }
}
