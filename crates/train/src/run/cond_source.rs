//! What a run's data conditions on, decided once from `[conditioning]` and the shard manifest:
//! class labels, or per-sample captions (stored embeddings or caption text) with the caption
//! field of each sample drawn by the configured mix.

use crate::cond_input::{CondInput, TextBatch};
use crate::config::{ConditioningConfig, ConditioningProviderKind, TextFrom};
use crate::error::{Result, TrainError};
use flowscale_core::FlowRng;
use flowscale_data::shards::{CaptionColumn, ShardManifest, TextEmbeddingInfo};
use std::path::Path;
use tch::{Device, Tensor};

#[derive(Debug, Clone)]
pub enum CondSource {
    Labels,
    Text(TextSource),
}

#[derive(Debug, Clone)]
pub struct TextSource {
    /// The stored embeddings' layout when training on them; `None`: captions encoded on the fly.
    pub embedded: Option<TextEmbeddingInfo>,
    /// Caption fields of every sample, in manifest order.
    pub fields: Vec<String>,
    /// Probability of each field (same order), summing to 1.
    pub mix: Vec<f64>,
}

impl CondSource {
    /// The source `c` asks for on the shards of `manifest` (at `path`, for messages).
    pub fn for_shards(
        c: &ConditioningConfig,
        manifest: &ShardManifest,
        path: &Path,
    ) -> Result<Self> {
        let bad = |m: String| TrainError::Invalid(format!("{}: {m}", path.display()));
        if c.provider != ConditioningProviderKind::Text {
            if !manifest.has_labels {
                return Err(bad(
                    "the shards carry no class labels; train on their captions with \
                     conditioning.provider = \"text\""
                        .into(),
                ));
            }
            return Ok(Self::Labels);
        }
        let fields = manifest.caption_fields();
        if fields.is_empty() {
            return Err(bad(
                "conditioning.provider = \"text\", but the shards carry no captions; precompute \
                 them with a caption source (and [text] for stored embeddings)"
                    .into(),
            ));
        }
        let embedded = match (c.text_from, &manifest.text) {
            (TextFrom::Embeddings | TextFrom::Auto, Some(t)) => Some(t.clone()),
            (TextFrom::Embeddings, None) => {
                return Err(bad(
                    "conditioning.text_from = \"embeddings\", but the shards hold no text \
                     embeddings (precompute with [text])"
                        .into(),
                ))
            }
            (TextFrom::Auto | TextFrom::Encoder, _) => {
                if !manifest.has_captions {
                    return Err(bad(
                        "the shards hold no caption text to encode on the fly".into()
                    ));
                }
                if c.text_encoder.is_none() {
                    return Err(bad("the shards hold caption text but no embeddings: set \
                         conditioning.text_encoder to a text config (configs/text/*.toml) to \
                         encode them on the fly"
                        .into()));
                }
                None
            }
        };
        let mix = if c.caption_mix.is_empty() {
            fields
                .iter()
                .map(|f| if *f == fields[0] { 1.0 } else { 0.0 })
                .collect()
        } else {
            if let Some(unknown) = c.caption_mix.keys().find(|k| !fields.contains(k)) {
                return Err(bad(format!(
                    "conditioning.caption_mix names field {unknown:?}; the shards have {fields:?}"
                )));
            }
            let total: f64 = c.caption_mix.values().sum();
            fields
                .iter()
                .map(|f| c.caption_mix.get(f).copied().unwrap_or(0.0) / total)
                .collect()
        };
        Ok(Self::Text(TextSource {
            embedded,
            fields,
            mix,
        }))
    }
}

impl TextSource {
    /// The field validation and grids use: the first one training draws.
    pub fn fixed_field(&self) -> usize {
        self.mix.iter().position(|&w| w > 0.0).unwrap_or(0)
    }

    /// Each sample's field for a batch of `b`: drawn from `rng` only when the mix has more than
    /// one field (so a one-field run draws nothing extra).
    pub fn draw_fields(&self, b: usize, rng: &mut FlowRng) -> Vec<usize> {
        let fixed = self.fixed_field();
        if self.mix.iter().filter(|&&w| w > 0.0).count() < 2 {
            return vec![fixed; b];
        }
        (0..b)
            .map(|_| {
                let u = rng.uniform();
                let mut acc = 0.0;
                for (i, w) in self.mix.iter().enumerate() {
                    acc += w;
                    if u < acc && *w > 0.0 {
                        return i;
                    }
                }
                // Rounding left u above the last cumulative sum: the last field drawn.
                self.mix.iter().rposition(|&w| w > 0.0).unwrap_or(fixed)
            })
            .collect()
    }

    /// The text of a batch whose sample `i` uses field `pick[i]`, from its caption columns.
    pub fn pick(
        &self,
        columns: &[CaptionColumn],
        pick: &[usize],
        device: Device,
    ) -> Result<CondInput> {
        let column = |f: usize| -> Result<&CaptionColumn> {
            let name = &self.fields[f];
            columns.iter().find(|c| &c.field == name).ok_or_else(|| {
                TrainError::Invalid(format!("a batch without caption field {name:?}"))
            })
        };
        let b = pick.len();
        let mut used: Vec<usize> = pick.to_vec();
        used.sort_unstable();
        used.dedup();
        let captions = if used
            .iter()
            .all(|&f| column(f).is_ok_and(|c| c.texts.is_some()))
        {
            Some(
                (0..b)
                    .map(|i| Ok(column(pick[i])?.texts.as_ref().expect("checked")[i].clone()))
                    .collect::<Result<Vec<_>>>()?,
            )
        } else {
            None
        };
        let embedding = if self.embedded.is_some() {
            let parts = |f: usize| -> Result<(Tensor, Tensor)> {
                let (c, p) = column(f)?.embedding.as_ref().ok_or_else(|| {
                    TrainError::Invalid(format!(
                        "caption field {:?} of a batch has no stored embedding",
                        self.fields[f]
                    ))
                })?;
                Ok((c.f_to_device(device)?, p.f_to_device(device)?))
            };
            let (mut ctx, mut pooled) = parts(used[0])?;
            for &f in &used[1..] {
                // Rows of field f replace those of the first field.
                let rows: Vec<bool> = pick.iter().map(|&p| p == f).collect();
                let rows = Tensor::f_from_slice(&rows)?.f_to_device(device)?;
                let (c, p) = parts(f)?;
                ctx = c.f_where_self(&rows.f_view([b as i64, 1, 1])?, &ctx)?;
                pooled = p.f_where_self(&rows.f_view([b as i64, 1])?, &pooled)?;
            }
            Some((ctx, pooled))
        } else {
            if captions.is_none() {
                return Err(TrainError::Invalid(
                    "a batch without caption text to encode".into(),
                ));
            }
            None
        };
        Ok(CondInput::Text(TextBatch {
            captions,
            embedding,
        }))
    }
}
