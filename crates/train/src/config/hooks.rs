//! Config sections of what a run does besides optimising: conditioning, validation, sample
//! grids, checkpoints and logging. Each hook runs on its own schedule (every N optimiser steps,
//! plus once at the end of the run).

use serde::{Deserialize, Serialize};

use super::{Validate, Validator};

/// How labels (or, with the text-encoder issue, captions) become the model's context tokens and
/// pooled vector.
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
    /// Where context and pooled vectors come from: `class_embedding` (learned per class) or
    /// `captions` (each class's caption encoded once by the frozen text encoder of
    /// `text_encoder`; `context_tokens`, `context_dim` and `pooled_dim` must equal its shapes).
    pub provider: ConditioningProviderKind,
    /// Text-encoder config (for example `configs/text/minilm.toml`) for `provider = "captions"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_encoder: Option<String>,
    /// Caption of each class: `{}` is replaced by the class name.
    pub caption_template: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConditioningProviderKind {
    #[default]
    ClassEmbedding,
    Captions,
}

impl Default for ConditioningConfig {
    fn default() -> Self {
        Self {
            context_tokens: 1,
            context_dim: 64,
            pooled_dim: 64,
            dropout: 0.1,
            provider: ConditioningProviderKind::default(),
            text_encoder: None,
            caption_template: "a photo of a {}".into(),
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
    }
}

/// Validation loss with the paper's protocol: fixed held-out samples, fixed noise, `levels`
/// equally spaced times in [0, 1]; reported per level and as the mean over all levels but t = 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ValidationConfig {
    /// Run every this many steps (0 = only at the end).
    pub every: u64,
    /// Held-out samples (the first ones of the test split).
    pub samples: u64,
    /// Equally spaced time levels in [0, 1] (the paper: 8).
    pub levels: u32,
    /// Samples per forward pass; the result does not depend on it.
    pub batch_size: u64,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        Self {
            every: 500,
            samples: 512,
            levels: 8,
            batch_size: 256,
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
    /// Shift of the SD3 sigma schedule (default: the formulation's training shift).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shift: Option<f64>,
}

impl Default for SamplesConfig {
    fn default() -> Self {
        Self {
            every: 1000,
            per_class: 8,
            steps: vec![25],
            cfg: vec![1.0, 2.5],
            shift: None,
        }
    }
}

impl Validate for SamplesConfig {
    fn validate(&self, v: &mut Validator) {
        v.count_at_least("per_class", u64::from(self.per_class), 1);
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
    /// Show the progress bar (default: when stderr is a terminal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<bool>,
    pub nonfinite: NonFinitePolicy,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            every: 50,
            t_bins: 4,
            progress: None,
            nonfinite: NonFinitePolicy::Stop,
        }
    }
}

impl Validate for LoggingConfig {
    fn validate(&self, v: &mut Validator) {
        v.count_at_least("every", self.every, 1);
        v.count_at_least("t_bins", u64::from(self.t_bins), 1);
    }
}
