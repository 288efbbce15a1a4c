//! Config sections of what a run does besides optimising: conditioning, validation, sample
//! grids, checkpoints and logging. Each hook runs on its own schedule (every N optimiser steps,
//! plus once at the end of the run).

use flowscale_formulations::SamplerFrame;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::{Validate, Validator};

/// How labels or per-sample captions become the model's context tokens and pooled vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConditioningConfig {
    /// Context tokens per sample (the class embedding is split into this many tokens).
    pub context_tokens: u32,
    /// Width of each context token (the MMDiT's `joint_attention_dim`).
    pub context_dim: u32,
    /// Width of the pooled vector (the MMDiT's `pooled_projection_dim`).
    pub pooled_dim: u32,
    /// Probability that each conditioning source is replaced by zeros during training, for
    /// classifier-free guidance (the paper: 0.464 per text encoder, ~10% fully unconditional).
    pub dropout: f64,
    /// Per-source dropout probabilities overriding `dropout`, by source name (`clip_l`, `clip_g`,
    /// `t5` for the SD3 stack, `minilm`, `class`); an unknown name is an error listing the
    /// run's sources.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub source_dropout: BTreeMap<String, f64>,
    /// Where context and pooled vectors come from: `class_embedding` (learned per class),
    /// `captions` (each class's caption encoded once by the frozen text encoder of
    /// `text_encoder`) or `text` (each sample's own caption from the latent shards). With a text
    /// encoder, `context_tokens`, `context_dim` and `pooled_dim` must equal its shapes.
    pub provider: ConditioningProviderKind,
    /// For `provider = "text"`: the embeddings `flowscale precompute` stored (`embeddings`), the
    /// captions encoded on the fly by `text_encoder` (`encoder`), or the first when the shards
    /// have them (`auto`).
    pub text_from: TextFrom,
    /// Text-encoder config (for example `configs/text/minilm.toml`): required for
    /// `provider = "captions"` and for captions encoded on the fly; `flowscale generate` encodes
    /// prompts with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_encoder: Option<String>,
    /// Caption of each class: `{}` is replaced by the class name.
    pub caption_template: String,
    /// For `provider = "text"` on shards with several caption fields: the probability of
    /// training on each field, by field name (the paper's caption study: `{ txt = 0.5,
    /// syn = 0.5 }`); drawn per sample from the run's generator. Empty: the `txt` field alone.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub caption_mix: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConditioningProviderKind {
    #[default]
    ClassEmbedding,
    Captions,
    Text,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextFrom {
    #[default]
    Auto,
    Embeddings,
    Encoder,
}

impl Default for ConditioningConfig {
    fn default() -> Self {
        Self {
            context_tokens: 1,
            context_dim: 64,
            pooled_dim: 64,
            dropout: 0.1,
            source_dropout: BTreeMap::new(),
            provider: ConditioningProviderKind::default(),
            text_from: TextFrom::default(),
            text_encoder: None,
            caption_template: "a photo of a {}".into(),
            caption_mix: BTreeMap::new(),
        }
    }
}

impl Validate for ConditioningConfig {
    fn validate(&self, v: &mut Validator) {
        v.count_at_least("context_tokens", u64::from(self.context_tokens), 1);
        v.count_at_least("context_dim", u64::from(self.context_dim), 1);
        v.count_at_least("pooled_dim", u64::from(self.pooled_dim), 1);
        v.in_range("dropout", self.dropout, 0.0, 1.0, false);
        if self.provider == ConditioningProviderKind::Captions && self.text_encoder.is_none() {
            v.fail("text_encoder", "is required with provider = \"captions\"");
        }
        if self.text_from == TextFrom::Encoder && self.text_encoder.is_none() {
            v.fail("text_encoder", "is required with text_from = \"encoder\"");
        }
        for (name, p) in &self.source_dropout {
            v.in_range(&format!("source_dropout.{name}"), *p, 0.0, 1.0, false);
        }
        for (name, w) in &self.caption_mix {
            v.at_least(&format!("caption_mix.{name}"), *w, 0.0, true);
        }
        if !self.caption_mix.is_empty() {
            if self.provider != ConditioningProviderKind::Text {
                v.fail("caption_mix", "applies to provider = \"text\" only");
            }
            let total: f64 = self.caption_mix.values().sum();
            if !(total > 0.0 && total.is_finite()) {
                v.fail("caption_mix", "needs a positive total weight");
            }
        }
    }
}

impl ConditioningConfig {
    /// Dropout probability of source `name`.
    pub fn dropout_of(&self, name: &str) -> f64 {
        self.source_dropout
            .get(name)
            .copied()
            .unwrap_or(self.dropout)
    }
}

/// Where the validation levels lie. The paper says both: "eight equally spaced values in [0, 1]"
/// (Sec. 5.1) and levels in (0, 1) averaged over all but the last (Sec. 5.3.3); docs/protocol.md.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValidationGrid {
    /// `levels` equally spaced t in [0, 1], k / (levels - 1); the mean leaves out t = 1 (pure
    /// noise, where no network can do better than the data's energy).
    #[default]
    Closed,
    /// `levels` equally spaced t inside (0, 1), k / (levels + 1) for k = 1..=levels; the mean
    /// covers all of them.
    Interior,
}

/// Validation loss with the paper's protocol: fixed held-out samples, fixed noise, `levels`
/// equally spaced times on the `grid`; reported per level and as the mean over all levels but
/// t = 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ValidationConfig {
    /// Run every this many steps (0 = only at the end).
    pub every: u64,
    /// Held-out samples (the first ones of the test split).
    pub samples: u64,
    /// Equally spaced time levels (the paper: 8).
    pub levels: u32,
    /// `closed` (in [0, 1], the default) or `interior` (inside (0, 1)).
    pub grid: ValidationGrid,
    /// Samples per forward pass; the result does not depend on it.
    pub batch_size: u64,
    /// Also validate before the first step (step 0): the starting point of the curve, e.g. how
    /// far an `[init]` run starts from a fresh one. Default false.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub at_start: bool,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        Self {
            every: 500,
            samples: 512,
            levels: 8,
            grid: ValidationGrid::Closed,
            batch_size: 256,
            at_start: false,
        }
    }
}

impl Validate for ValidationConfig {
    fn validate(&self, v: &mut Validator) {
        v.count_at_least("samples", self.samples, 1);
        v.count_at_least("levels", u64::from(self.levels), 2);
        v.count_at_least("batch_size", self.batch_size, 1);
    }
}

/// Sample grids with fixed noise and labels: one row per class, `per_class` columns, for every
/// (steps, cfg) pair, from the raw weights and every EMA.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SamplesConfig {
    /// Every this many steps (0 = only at the end).
    pub every: u64,
    /// Samples per class.
    pub per_class: u32,
    /// Euler steps of each grid.
    pub steps: Vec<u32>,
    /// Guidance scales of each grid (1 = no guidance).
    pub cfg: Vec<f64>,
    /// Shift of the sampler's schedule (default: the formulation's training shift).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shift: Option<f64>,
    /// Sampler frame: `rf` (every formulation on the RF path on SD3's sigmas, the paper's
    /// protocol) or `native` (each formulation's own ODE and schedule); docs/protocol.md
    /// section 7. Grids of the native frame are named `..._native.png`.
    pub frame: SamplerFrame,
    /// Rows of a text run's grids: the first val captions, one row each (a caption file next
    /// to each grid lists them). Class runs have one row per class.
    pub text_rows: u32,
    /// Conditioning sources left out of the grids' conditional input (the paper samples
    /// without T5: `["t5"]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drop_sources: Vec<String>,
}

impl Default for SamplesConfig {
    fn default() -> Self {
        Self {
            every: 1000,
            per_class: 8,
            steps: vec![25],
            cfg: vec![1.0, 2.5],
            shift: None,
            frame: SamplerFrame::Rf,
            text_rows: 8,
            drop_sources: Vec::new(),
        }
    }
}

impl Validate for SamplesConfig {
    fn validate(&self, v: &mut Validator) {
        v.count_at_least("per_class", u64::from(self.per_class), 1);
        v.count_at_least("text_rows", u64::from(self.text_rows), 1);
        if self.steps.is_empty() || self.steps.contains(&0) {
            v.fail("steps", "must list at least one positive step count");
        }
        if self.cfg.is_empty() {
            v.fail("cfg", "must list at least one guidance scale");
        }
        for (i, w) in self.cfg.iter().enumerate() {
            v.at_least(&format!("cfg[{i}]"), *w, 0.0, true);
        }
        if let Some(s) = self.shift {
            v.at_least("shift", s, 0.0, false);
        }
    }
}

/// Checkpoint schedule and retention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointConfig {
    /// Every this many steps (the last step is always saved).
    pub every: u64,
    /// Keep the newest this many.
    pub keep_last: u32,
    /// Also keep every checkpoint whose step is a multiple of this (0 = none).
    pub keep_every: u64,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self {
            every: 1000,
            keep_last: 2,
            keep_every: 0,
        }
    }
}

impl Validate for CheckpointConfig {
    fn validate(&self, v: &mut Validator) {
        v.count_at_least("every", self.every, 1);
        v.count_at_least("keep_last", u64::from(self.keep_last), 1);
    }
}

/// What a non-finite training loss does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NonFinitePolicy {
    /// Save a diagnostic (batch, times, loss) and stop with an error.
    Stop,
    /// Skip the optimiser step and count it.
    Skip,
}

/// Scalars to TensorBoard and metrics.jsonl, and the progress bar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    /// Log scalars every this many steps (the only host synchronisation of the loop).
    pub every: u64,
    /// Bins of t for the loss-per-t-bin scalars.
    pub t_bins: u32,
    /// Show progress (default true): the bar when stderr is a terminal, otherwise one line per
    /// logging point (a log file shows the run is alive); false: neither.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<bool>,
    pub nonfinite: NonFinitePolicy,
    /// Peak dense bf16 TFLOP/s of one device, for `perf/mfu`; default: the GPU's data-sheet
    /// figure when its name is known (`crate::peak_flops`), none on the CPU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_tflops: Option<f64>,
    /// Attention diagnostics every this many steps (0 = off): each block's largest attention
    /// logit and mean attention entropy on a fixed probe batch (`trainer::attention_hook`).
    pub attention_every: u64,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            every: 50,
            t_bins: 4,
            progress: None,
            nonfinite: NonFinitePolicy::Stop,
            peak_tflops: None,
            attention_every: 0,
        }
    }
}

impl Validate for LoggingConfig {
    fn validate(&self, v: &mut Validator) {
        v.count_at_least("every", self.every, 1);
        v.count_at_least("t_bins", u64::from(self.t_bins), 1);
        if let Some(peak) = self.peak_tflops {
            v.at_least("peak_tflops", peak, 0.0, false);
        }
    }
}
