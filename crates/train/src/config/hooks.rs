//! Config sections of what a run does besides optimising: conditioning, validation, sample
//! grids, checkpoints and logging. Each hook runs on its own schedule (every N optimiser steps,
//! plus once at the end of the run).

use serde::{Deserialize, Serialize};

use super::{Validate, Validator};

/// How labels (or, with the text-encoder issue, captions) become the model's context tokens and
/// pooled vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditioningConfig {
    /// Context tokens per sample (the class embedding is split into this many tokens).
    #[serde(default = "default_context_tokens")]
    pub context_tokens: u32,
    /// Width of each context token (the MMDiT's `joint_attention_dim`).
    #[serde(default = "default_cond_dim")]
    pub context_dim: u32,
    /// Width of the pooled vector (the MMDiT's `pooled_projection_dim`).
    #[serde(default = "default_cond_dim")]
    pub pooled_dim: u32,
    /// Probability that each conditioning source is replaced by zeros during training, for
    /// classifier-free guidance (the paper: 0.464 per text encoder, ~10% fully unconditional).
    #[serde(default = "default_cond_dropout")]
    pub dropout: f64,
    /// Where context and pooled vectors come from: `class_embedding` (learned per class) or
    /// `captions` (each class's caption encoded once by the frozen text encoder of
    /// `text_encoder`; `context_tokens`, `context_dim` and `pooled_dim` must equal its shapes).
    #[serde(default)]
    pub provider: ConditioningProviderKind,
    /// Text-encoder config (for example `configs/text/minilm.toml`) for `provider = "captions"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_encoder: Option<String>,
    /// Caption of each class: `{}` is replaced by the class name.
    #[serde(default = "default_caption_template")]
    pub caption_template: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConditioningProviderKind {
    #[default]
    ClassEmbedding,
    Captions,
}

fn default_caption_template() -> String {
    "a photo of a {}".into()
}

fn default_context_tokens() -> u32 {
    1
}
fn default_cond_dim() -> u32 {
    64
}
fn default_cond_dropout() -> f64 {
    0.1
}

impl Default for ConditioningConfig {
    fn default() -> Self {
        Self {
            context_tokens: default_context_tokens(),
            context_dim: default_cond_dim(),
            pooled_dim: default_cond_dim(),
            dropout: default_cond_dropout(),
            provider: ConditioningProviderKind::default(),
            text_encoder: None,
            caption_template: default_caption_template(),
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
#[serde(deny_unknown_fields)]
pub struct ValidationConfig {
    /// Run every this many steps (0 = only at the end).
    #[serde(default = "default_val_every")]
    pub every: u64,
    /// Held-out samples (the first ones of the test split).
    #[serde(default = "default_val_samples")]
    pub samples: u64,
    /// Equally spaced time levels in [0, 1] (the paper: 8).
    #[serde(default = "default_val_levels")]
    pub levels: u32,
    /// Samples per forward pass; the result does not depend on it.
    #[serde(default = "default_val_batch")]
    pub batch_size: u64,
}

fn default_val_every() -> u64 {
    500
}
fn default_val_samples() -> u64 {
    512
}
fn default_val_levels() -> u32 {
    8
}
fn default_val_batch() -> u64 {
    256
}

impl Default for ValidationConfig {
    fn default() -> Self {
        Self {
            every: default_val_every(),
            samples: default_val_samples(),
            levels: default_val_levels(),
            batch_size: default_val_batch(),
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
#[serde(deny_unknown_fields)]
pub struct SamplesConfig {
    /// Every this many steps (0 = only at the end).
    #[serde(default = "default_samples_every")]
    pub every: u64,
    /// Samples per class.
    #[serde(default = "default_per_class")]
    pub per_class: u32,
    /// Euler steps of each grid.
    #[serde(default = "default_sample_steps")]
    pub steps: Vec<u32>,
    /// Guidance scales of each grid (1 = no guidance).
    #[serde(default = "default_cfg")]
    pub cfg: Vec<f64>,
    /// Shift of the SD3 sigma schedule (default: the formulation's training shift).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift: Option<f64>,
}

fn default_samples_every() -> u64 {
    1000
}
fn default_per_class() -> u32 {
    8
}
fn default_sample_steps() -> Vec<u32> {
    vec![25]
}
fn default_cfg() -> Vec<f64> {
    vec![1.0, 2.5]
}

impl Default for SamplesConfig {
    fn default() -> Self {
        Self {
            every: default_samples_every(),
            per_class: default_per_class(),
            steps: default_sample_steps(),
            cfg: default_cfg(),
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
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// Every this many steps (the last step is always saved).
    #[serde(default = "default_ckpt_every")]
    pub every: u64,
    /// Keep the newest this many.
    #[serde(default = "default_keep_last")]
    pub keep_last: u32,
    /// Also keep every checkpoint whose step is a multiple of this (0 = none).
    #[serde(default)]
    pub keep_every: u64,
}

fn default_ckpt_every() -> u64 {
    1000
}
fn default_keep_last() -> u32 {
    2
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self {
            every: default_ckpt_every(),
            keep_last: default_keep_last(),
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
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    /// Log scalars every this many steps (the only host synchronisation of the loop).
    #[serde(default = "default_log_every")]
    pub every: u64,
    /// Bins of t for the loss-per-t-bin scalars.
    #[serde(default = "default_t_bins")]
    pub t_bins: u32,
    /// Show the progress bar (default: when stderr is a terminal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<bool>,
    #[serde(default = "default_nonfinite")]
    pub nonfinite: NonFinitePolicy,
}

fn default_log_every() -> u64 {
    50
}
fn default_t_bins() -> u32 {
    4
}
fn default_nonfinite() -> NonFinitePolicy {
    NonFinitePolicy::Stop
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            every: default_log_every(),
            t_bins: default_t_bins(),
            progress: None,
            nonfinite: default_nonfinite(),
        }
    }
}

impl Validate for LoggingConfig {
    fn validate(&self, v: &mut Validator) {
        v.count_at_least("every", self.every, 1);
        v.count_at_least("t_bins", u64::from(self.t_bins), 1);
    }
}
