//! MMDiT architecture config. Field names are those of diffusers' `SD3Transformer2DModel`
//! `config.json`, so a diffusers folder's config parses directly (keys starting with `_` are
//! diffusers' bookkeeping and are ignored).

use crate::backbone_kind::BackboneKind;
use crate::error::{ModelError, Result};
use crate::position_grid::PositionGrid;
use serde::{Deserialize, Serialize};

/// The only QK-norm diffusers' SD3 model supports besides none.
pub const QK_NORM_RMS: &str = "rms_norm";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MmditConfig {
    /// Latent side the position table is scaled for (`base_size = sample_size / patch_size`).
    pub sample_size: i64,
    pub patch_size: i64,
    pub in_channels: i64,
    /// Depth d: the number of joint blocks.
    pub num_layers: i64,
    pub attention_head_dim: i64,
    pub num_attention_heads: i64,
    /// Channels of the text context tokens (4096 for SD3).
    pub joint_attention_dim: i64,
    /// Width the context is projected to; must equal the hidden size.
    pub caption_projection_dim: i64,
    /// Channels of the pooled text vector (2048 for SD3).
    pub pooled_projection_dim: i64,
    /// `null` means `in_channels`.
    pub out_channels: Option<i64>,
    /// Side M of the M x M position table; flowscale needs it set (SD3 always sets it).
    pub pos_embed_max_size: Option<i64>,
    /// `null` or `"rms_norm"`.
    #[serde(default)]
    pub qk_norm: Option<String>,
    /// SD3.5's MMDiT-X second attention; only empty is supported.
    #[serde(default)]
    pub dual_attention_layers: Vec<i64>,
    /// flowscale's extension, not a diffusers field: how image tokens get positions. Absent
    /// (every diffusers and SD3 config) is SD3's cropped table; only the table exports to
    /// diffusers.
    #[serde(default, skip_serializing_if = "PositionGrid::is_table")]
    pub position_grid: PositionGrid,
    /// flowscale's extension: the architecture (docs/backbones.md). Absent is SD3's MMDiT, the
    /// only one with diffusers and SD3 layouts; the others keep this config's field names
    /// (`num_layers` blocks of width `num_attention_heads x attention_head_dim`, context of
    /// `joint_attention_dim` channels projected to the width).
    #[serde(default, skip_serializing_if = "BackboneKind::is_mmdit")]
    pub backbone: BackboneKind,
    /// MMDiT-3 only: the number of leading context tokens that form the first context stream
    /// (CLIP's 77 in SD3's stack); the remaining tokens are the second (T5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_split: Option<i64>,
}

/// Preset names accepted by [`MmditConfig::preset`].
pub const PRESETS: &[&str] = &[
    "d15",
    "d18",
    "d21",
    "d24",
    "d30",
    "d38",
    "sd3-medium",
    "sd3.5-large",
    "tiny-d2",
    "tiny-d4",
];

impl MmditConfig {
    /// The paper's scaling rule: depth d, hidden 64·d, d heads of 64 channels, SD3's VAE (16
    /// channels), text dims (context 4096, pooled 2048) and position table (M = 192 at base 64).
    pub fn from_depth(depth: i64) -> Self {
        MmditConfig {
            sample_size: 128,
            patch_size: 2,
            in_channels: 16,
            num_layers: depth,
            attention_head_dim: 64,
            num_attention_heads: depth,
            joint_attention_dim: 4096,
            caption_projection_dim: 64 * depth,
            pooled_projection_dim: 2048,
            out_channels: Some(16),
            pos_embed_max_size: Some(192),
            qk_norm: None,
            dual_attention_layers: Vec::new(),
            position_grid: PositionGrid::Table,
            backbone: BackboneKind::Mmdit,
            context_split: None,
        }
    }

    /// A small model for tests and CPU studies: hidden 64·d, 4 latent channels, 384-d text
    /// (a MiniLM-sized encoder), a 64 x 64 position table based at 16.
    pub fn tiny(depth: i64) -> Self {
        MmditConfig {
            sample_size: 32,
            in_channels: 4,
            out_channels: Some(4),
            joint_attention_dim: 384,
            pooled_projection_dim: 384,
            pos_embed_max_size: Some(64),
            ..Self::from_depth(depth)
        }
    }

    /// A named preset (see [`PRESETS`]).
    pub fn preset(name: &str) -> Result<Self> {
        let cfg = match name {
            "sd3-medium" => Self::from_depth(24),
            "sd3.5-large" => MmditConfig {
                qk_norm: Some(QK_NORM_RMS.to_owned()),
                ..Self::from_depth(38)
            },
            "tiny-d2" => Self::tiny(2),
            "tiny-d4" => Self::tiny(4),
            _ => match name.strip_prefix('d').and_then(|d| d.parse::<i64>().ok()) {
                Some(d) if [15, 18, 21, 24, 30, 38].contains(&d) => Self::from_depth(d),
                _ => {
                    return Err(ModelError::Config(format!(
                        "unknown preset `{name}`; allowed: {}",
                        PRESETS.join(", ")
                    )))
                }
            },
        };
        Ok(cfg)
    }

    /// Parses a diffusers `config.json` (or flowscale's own JSON), ignoring `_`-prefixed keys.
    pub fn from_json(text: &str) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| ModelError::Config(format!("config JSON: {e}")))?;
        let serde_json::Value::Object(map) = value else {
            return Err(ModelError::Config("config JSON is not an object".into()));
        };
        let map: serde_json::Map<String, serde_json::Value> = map
            .into_iter()
            .filter(|(k, _)| !k.starts_with('_'))
            .collect();
        let cfg: MmditConfig = serde_json::from_value(serde_json::Value::Object(map))
            .map_err(|e| ModelError::Config(format!("config JSON: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The JSON of a diffusers `config.json` for this architecture (MMDiT only; the other
    /// backbones have no diffusers class, see [`MmditConfig::to_json`]).
    pub fn to_diffusers_json(&self) -> Result<String> {
        if !self.backbone.is_mmdit() {
            return Err(ModelError::Config(format!(
                "the {} backbone has no diffusers layout; it exports as a flowscale folder",
                self.backbone
            )));
        }
        let mut value = serde_json::to_value(self)
            .map_err(|e| ModelError::Config(format!("config JSON: {e}")))?;
        if let serde_json::Value::Object(map) = &mut value {
            map.insert("_class_name".into(), "SD3Transformer2DModel".into());
            map.insert("_diffusers_version".into(), "0.35.2".into());
        }
        serde_json::to_string_pretty(&value)
            .map_err(|e| ModelError::Config(format!("config JSON: {e}")))
    }

    /// flowscale's JSON of this config: diffusers' field names plus `backbone` (and
    /// `context_split`) for backbones other than MMDiT; [`MmditConfig::from_json`] reads it.
    pub fn to_json(&self) -> Result<String> {
        if self.backbone.is_mmdit() {
            return self.to_diffusers_json();
        }
        serde_json::to_string_pretty(self)
            .map_err(|e| ModelError::Config(format!("config JSON: {e}")))
    }

    /// This config built as `backbone` at the same widths, MMDiT-3 splitting its context after
    /// `context_split` tokens (ignored by the other backbones); size it with
    /// [`crate::match_mmdit_params`].
    pub fn as_backbone(&self, backbone: BackboneKind, context_split: i64) -> MmditConfig {
        MmditConfig {
            backbone,
            context_split: (backbone == BackboneKind::Mmdit3).then_some(context_split),
            ..self.clone()
        }
    }

    /// Hidden width `heads x head_dim`.
    pub fn hidden(&self) -> i64 {
        self.num_attention_heads
            .saturating_mul(self.attention_head_dim)
    }

    pub fn out_channels(&self) -> i64 {
        self.out_channels.unwrap_or(self.in_channels)
    }

    pub fn qk_norm(&self) -> bool {
        self.qk_norm.is_some()
    }

    /// Side of the position table (validated to be set).
    pub fn pos_max(&self) -> i64 {
        self.pos_embed_max_size.unwrap_or(0)
    }

    /// Checks every field and reports all problems at once.
    pub fn validate(&self) -> Result<()> {
        let mut problems = Vec::new();
        let positive = [
            ("sample_size", self.sample_size),
            ("patch_size", self.patch_size),
            ("in_channels", self.in_channels),
            ("num_layers", self.num_layers),
            ("attention_head_dim", self.attention_head_dim),
            ("num_attention_heads", self.num_attention_heads),
            ("joint_attention_dim", self.joint_attention_dim),
            ("caption_projection_dim", self.caption_projection_dim),
            ("pooled_projection_dim", self.pooled_projection_dim),
            ("out_channels", self.out_channels()),
        ];
        for (name, v) in positive {
            if v <= 0 {
                problems.push(format!("{name} must be > 0 (got {v})"));
            }
        }
        // Upper bounds, so that no size computed from a config (parameter counts, FLOPs, the
        // allocation itself) can overflow or ask for absurd memory: far beyond any model built,
        // and small enough that 1024 layers of 65536-wide blocks still count in an i64.
        let limits = [
            ("num_layers", self.num_layers, 1024),
            ("hidden size", self.hidden(), 65536),
            ("num_attention_heads", self.num_attention_heads, 1024),
            ("patch_size", self.patch_size, 256),
            ("sample_size", self.sample_size, 16384),
            ("in_channels", self.in_channels, 4096),
            ("out_channels", self.out_channels(), 4096),
            ("joint_attention_dim", self.joint_attention_dim, 65536),
            ("pooled_projection_dim", self.pooled_projection_dim, 65536),
        ];
        for (name, v, max) in limits {
            if v > max {
                problems.push(format!("{name} must be at most {max} (got {v})"));
            }
        }
        if self.caption_projection_dim != self.hidden() {
            problems.push(format!(
                "caption_projection_dim ({}) must equal num_attention_heads x attention_head_dim ({})",
                self.caption_projection_dim,
                self.hidden()
            ));
        }
        if self.hidden() % 4 != 0 {
            problems.push(format!(
                "the hidden size ({}) must be a multiple of 4 for the 2D sin-cos position table",
                self.hidden()
            ));
        }
        if self.patch_size > 0 && self.sample_size > 0 && self.sample_size / self.patch_size == 0 {
            problems.push("sample_size must be at least patch_size".into());
        }
        match self.pos_embed_max_size {
            None => problems.push(
                "pos_embed_max_size must be set (SD3's cropped position table); null is not supported"
                    .into(),
            ),
            Some(m) if m <= 0 => problems.push(format!("pos_embed_max_size must be > 0 (got {m})")),
            _ => {}
        }
        if let Some(norm) = &self.qk_norm {
            if norm != QK_NORM_RMS {
                problems.push(format!(
                    "qk_norm must be null or \"{QK_NORM_RMS}\" (got \"{norm}\")"
                ));
            }
        }
        if let PositionGrid::Interpolated { base_size } = self.position_grid {
            if !(1..=16384).contains(&base_size) {
                problems.push(format!(
                    "position_grid.base_size must be in [1, 16384] (got {base_size})"
                ));
            }
        }
        match (self.backbone, self.context_split) {
            (BackboneKind::Mmdit3, None) => problems.push(
                "context_split must be set for the mmdit-3 backbone (the context tokens of its \
                 first stream)"
                    .into(),
            ),
            (BackboneKind::Mmdit3, Some(n)) if n <= 0 => {
                problems.push(format!("context_split must be > 0 (got {n})"))
            }
            (BackboneKind::Mmdit3, _) => {}
            (other, Some(n)) => problems.push(format!(
                "context_split ({n}) is an mmdit-3 setting; the {other} backbone has no context \
                 streams to split"
            )),
            (_, None) => {}
        }
        if !self.dual_attention_layers.is_empty() {
            problems.push(format!(
                "dual_attention_layers {:?}: SD3.5 MMDiT-X dual attention is not supported; only [] is",
                self.dual_attention_layers
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ModelError::Config(problems.join("; ")))
        }
    }
}
