//! Which backbone a config builds (`model.backbone`): SD3's MMDiT and the backbones the paper
//! compares it with (Sec. 5.2.3, Fig. 4). The names are flowscale's; the architecture of each is
//! in docs/backbones.md.

use crate::error::{ModelError, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum BackboneKind {
    /// SD3's MMDiT: image and context streams with their own weights, joint attention.
    #[default]
    Mmdit,
    /// MMDiT with three weight sets: the image, the first context part (CLIP) and the second
    /// (T5) as separate streams, one joint attention.
    Mmdit3,
    /// DiT over the concatenated sequence `[context; image]`, one weight set.
    Dit,
    /// DiT on the image tokens whose blocks cross-attend to the context tokens (PixArt-alpha).
    CrossDit,
    /// DiT with U-ViT's long skip connections from the first half of the blocks to the second.
    Uvit,
}

/// Every backbone, in the order the paper's figure lists them.
pub const BACKBONES: [BackboneKind; 5] = [
    BackboneKind::Dit,
    BackboneKind::CrossDit,
    BackboneKind::Uvit,
    BackboneKind::Mmdit,
    BackboneKind::Mmdit3,
];

impl BackboneKind {
    pub fn parse(s: &str) -> Result<Self> {
        BACKBONES
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| {
                ModelError::Config(format!(
                    "unknown backbone `{s}`; allowed: {}",
                    BACKBONES.map(|b| b.name()).join(", ")
                ))
            })
    }

    /// The config spelling, which [`BackboneKind::parse`] reads back.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Mmdit => "mmdit",
            Self::Mmdit3 => "mmdit-3",
            Self::Dit => "dit",
            Self::CrossDit => "crossdit",
            Self::Uvit => "uvit",
        }
    }

    pub fn is_mmdit(&self) -> bool {
        *self == Self::Mmdit
    }

    /// The number of context streams with their own weights (0 when the context shares the
    /// image's weights or is only attended to).
    pub fn context_streams(&self) -> usize {
        match self {
            Self::Mmdit => 1,
            Self::Mmdit3 => 2,
            Self::Dit | Self::CrossDit | Self::Uvit => 0,
        }
    }
}

impl std::fmt::Display for BackboneKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl TryFrom<String> for BackboneKind {
    type Error = ModelError;
    fn try_from(s: String) -> Result<Self> {
        Self::parse(&s)
    }
}

impl From<BackboneKind> for String {
    fn from(b: BackboneKind) -> String {
        b.name().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_unknown_names_list_the_allowed_ones() {
        for b in BACKBONES {
            assert_eq!(BackboneKind::parse(b.name()).unwrap(), b);
        }
        let e = BackboneKind::parse("MMDiT").unwrap_err().to_string();
        assert!(
            e.contains("`MMDiT`") && e.contains("crossdit") && e.contains("mmdit-3"),
            "{e}"
        );
    }
}
