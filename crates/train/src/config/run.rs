//! The run config: one TOML file describes a training run. Sections mirror the pipeline
//! (data -> model -> formulation -> optimiser/EMA -> training loop). Every field has the default
//! written next to it, and `flowscale config` prints the resolved file.

use crate::distributed::zero::ZeroStage;
use flowscale_formulations::{native_schedule, Formulation, SamplerFrame};
use flowscale_models::{BackboneKind, Checkpointing};
use serde::{Deserialize, Serialize};

use super::distributed::{DistBackend, GradReduceDtype};
use super::hooks::{
    CheckpointConfig, ConditioningConfig, LoggingConfig, SamplesConfig, ValidationConfig,
};
use super::init::InitConfig;
use super::posthoc_ema::PosthocEmaConfig;
use super::shift::{ShiftSetting, DEFAULT_SHIFT_BASE_RESOLUTION};
use super::{Validate, Validator};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub run: RunSection,
    pub data: DataConfig,
    #[serde(default)]
    pub model: ModelConfig,
    #[serde(default)]
    pub formulation: FormulationConfig,
    #[serde(default)]
    pub optim: OptimConfig,
    #[serde(default)]
    pub ema: EmaConfig,
    pub train: TrainConfig,
    #[serde(default)]
    pub conditioning: ConditioningConfig,
    #[serde(default)]
    pub validation: ValidationConfig,
    #[serde(default)]
    pub samples: SamplesConfig,
    #[serde(default)]
    pub checkpoint: CheckpointConfig,
    #[serde(default)]
    pub logging: LoggingConfig,
    /// Start from another run's weights (absent: from scratch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<InitConfig>,
}

impl Validate for RunConfig {
    fn validate(&self, v: &mut Validator) {
        v.section("run", &self.run);
        v.section("data", &self.data);
        v.section("model", &self.model);
        v.section("formulation", &self.formulation);
        v.section("optim", &self.optim);
        v.section("ema", &self.ema);
        v.section("train", &self.train);
        v.section("conditioning", &self.conditioning);
        v.section("validation", &self.validation);
        v.section("samples", &self.samples);
        v.section("checkpoint", &self.checkpoint);
        v.section("logging", &self.logging);
        if let Some(init) = &self.init {
            v.section("init", init);
        }
        self.check_native_grids(v);
    }
}

impl RunConfig {
    /// Native-frame grids whose schedule the formulation refuses (the LDM schedule takes no
    /// shift) are named now rather than failing the run at its first grid. Problems of the
    /// values themselves (an unknown formulation, a zero step count, a bad shift) are reported
    /// by their own keys.
    fn check_native_grids(&self, v: &mut Validator) {
        if self.samples.frame != SamplerFrame::Native {
            return;
        }
        let Ok(formulation) = Formulation::parse(&self.formulation.name) else {
            return;
        };
        let shift = match self.samples.shift {
            Some(s) if s.is_finite() && s > 0.0 => s,
            Some(_) => return,
            None => match self.shift_alpha() {
                Ok(a) => a,
                Err(_) => return,
            },
        };
        let refused = self
            .samples
            .steps
            .iter()
            .filter(|&&steps| steps > 0)
            .find_map(|&steps| native_schedule(formulation, steps as usize, shift).err());
        if let Some(e) = refused {
            v.fail("samples.frame", e.to_string());
        }
    }
}

impl RunConfig {
    /// The training shift alpha: `formulation.shift`, or for `"auto"` the run's resolution
    /// against `formulation.shift_base_resolution`. Every consumer of the run's shift (training
    /// timesteps, sample grids, eval, generation, export cards) reads it here.
    pub fn shift_alpha(&self) -> flowscale_formulations::Result<f64> {
        let base = self
            .formulation
            .shift_base_resolution
            .unwrap_or(DEFAULT_SHIFT_BASE_RESOLUTION);
        self.formulation.shift.alpha(self.data.resolution, base)
    }

    /// The config with `formulation.shift = "auto"` replaced by its alpha (and the base
    /// resolution, which then says nothing, dropped): what a run records as its resolved
    /// config, so its config hash, run ID and every later reader see the number it trained
    /// with, the same as a config that wrote that number.
    pub fn with_resolved_shift(mut self) -> flowscale_formulations::Result<Self> {
        self.formulation.shift = ShiftSetting::Alpha(self.shift_alpha()?);
        self.formulation.shift_base_resolution = None;
        Ok(self)
    }
}

/// Where a run computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// The first CUDA device when there is one, else the CPU.
    Auto,
    Cpu,
    Cuda,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    /// Name of the run; its directory is `<out_dir>/<name>`.
    pub name: String,
    /// Parent directory of run directories (default `runs`).
    #[serde(default = "default_out_dir")]
    pub out_dir: String,
    /// Seed of every random stream of the run (default 0).
    #[serde(default)]
    pub seed: u64,
    #[serde(default = "default_device")]
    pub device: DeviceChoice,
    /// Data-parallel runs (launched with torchrun's environment): seconds a rendezvous or a
    /// collective may wait for the other ranks before the run fails (default 600).
    #[serde(default = "default_dist_timeout")]
    pub dist_timeout_s: u64,
    /// Data-parallel runs: the process group, "auto" (default: NCCL on CUDA, Gloo on the CPU),
    /// "gloo" or "nccl".
    #[serde(default)]
    pub dist_backend: DistBackend,
    /// Data-parallel runs: dtype of the gradient all-reduce, "fp32" (when absent) or "bf16".
    /// Absent rather than defaulted in the resolved config, so configs and checkpoints written
    /// before the key existed still resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dist_grad_dtype: Option<GradReduceDtype>,
}

fn default_dist_timeout() -> u64 {
    600
}

fn default_out_dir() -> String {
    "runs".to_owned()
}

fn default_device() -> DeviceChoice {
    DeviceChoice::Auto
}

impl Validate for RunSection {
    fn validate(&self, v: &mut Validator) {
        let ok = !self.name.is_empty()
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !self.name.starts_with('.');
        if !ok {
            v.fail(
                "name",
                format!(
                    "must be a non-empty directory name of letters, digits, '-', '_', '.' \
                     (not starting with '.'), got {:?}",
                    self.name
                ),
            );
        }
        if self.out_dir.is_empty() {
            v.fail("out_dir", "must not be empty");
        }
        v.count_at_least("dist_timeout_s", self.dist_timeout_s, 1);
    }
}

/// The training data sets flowscale reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// Fashion-MNIST idx files (Debian `dataset-fashion-mnist`), class-conditional, pixel space.
    FashionMnist,
    /// MNIST idx files, class-conditional, pixel space.
    Mnist,
    /// Any folder of images (optionally one sub-folder per class).
    ImageFolder,
    /// Precomputed latent shards written by `flowscale precompute`.
    LatentShards,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub dataset: DatasetKind,
    /// Location of the data; each dataset kind has a default where it has a standard one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Square training resolution in pixels.
    pub resolution: u32,
    /// Latent shards: shuffle buffer capacity in samples (default 1000; 0 = shard order only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shuffle_buffer: Option<u32>,
    /// Latent shards: threads decoding shards ahead (default 2; does not change the batches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<u32>,
    /// Latent shards: batches collated ahead of the trainer (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefetch: Option<u32>,
    /// Latent shards: the autoencoder's folder, to decode sample grids (default: the folder the
    /// manifest records); its weights must hash to the manifest's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoencoder_path: Option<String>,
    /// Latent shards: skip (and count) unreadable shards instead of stopping the run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_bad_shards: bool,
    /// Latent shards: what the latents are normalised with, `autoencoder` (its shift and
    /// scaling factors, SD3's; the default) or `data` (the train split's mean and std, which
    /// precompute records in the manifest).
    #[serde(default, skip_serializing_if = "LatentNormalization::is_autoencoder")]
    pub latent_normalization: LatentNormalization,
}

/// See [`DataConfig::latent_normalization`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LatentNormalization {
    /// `(z - shift_factor) * scaling_factor` with the autoencoder's constants.
    #[default]
    Autoencoder,
    /// `(z - mean) / std` with the train split's statistics (one pair for all channels).
    Data,
}

impl LatentNormalization {
    fn is_autoencoder(&self) -> bool {
        *self == Self::Autoencoder
    }
}

impl Validate for DataConfig {
    fn validate(&self, v: &mut Validator) {
        if self.resolution < 8 || self.resolution > 4096 || !self.resolution.is_multiple_of(8) {
            v.fail(
                "resolution",
                format!(
                    "must be a multiple of 8 in [8, 4096], got {}",
                    self.resolution
                ),
            );
        }
        let needs_path = matches!(
            self.dataset,
            DatasetKind::ImageFolder | DatasetKind::LatentShards
        );
        if needs_path && self.path.as_deref().is_none_or(str::is_empty) {
            v.fail("path", "is required for this dataset");
        }
        if self.workers == Some(0) || self.prefetch == Some(0) {
            v.fail(
                "workers",
                "data.workers and data.prefetch must be at least 1",
            );
        }
    }
}

/// The backbone. SD3's scaling rule: hidden = 64 x depth, heads = depth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Number of joint blocks (default 2).
    #[serde(default = "default_depth")]
    pub depth: u32,
    /// Hidden size; default 64 x depth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_size: Option<u32>,
    /// Attention heads; default `depth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_heads: Option<u32>,
    /// Patch size in latent pixels (default 2).
    #[serde(default = "default_patch_size")]
    pub patch_size: u32,
    /// RMSNorm on queries and keys (SD3.5; default false).
    #[serde(default)]
    pub qk_norm: bool,
    /// Where image tokens sit for the sin-cos position embedding: `"table"` (default: SD3's
    /// fixed table at the training grid, what diffusers exports hold) or `"interpolated"` (SD3
    /// Sec. 5.3.2: the training resolution's square maps onto the grid of
    /// `position_base_resolution`, extended beyond it for other aspect ratios).
    #[serde(default, skip_serializing_if = "PositionGridKind::is_table")]
    pub position_grid: PositionGridKind,
    /// `position_grid = "interpolated"`: the base resolution in pixels a side (default 256, the
    /// paper's pre-training resolution); in patches it must be a whole number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position_base_resolution: Option<u32>,
    /// The backbone (docs/backbones.md): `"mmdit"` (default, SD3's), `"mmdit-3"` (CLIP and T5
    /// as separate streams), `"dit"`, `"crossdit"`, `"uvit"`.
    #[serde(default, skip_serializing_if = "BackboneKind::is_mmdit")]
    pub backbone: BackboneKind,
    /// How a backbone other than MMDiT is sized when `hidden_size` is not given:
    /// `"matched-params"` (default): `depth` heads of the width whose parameter count is
    /// closest to the MMDiT of the same depth; `"depth"`: hidden 64 x depth like MMDiT.
    #[serde(default, skip_serializing_if = "WidthRule::is_matched_params")]
    pub width_rule: WidthRule,
    /// `backbone = "mmdit-3"`: the leading context tokens of its first stream. Default: the
    /// first text source's tokens (CLIP's in SD3's stack) when the context holds several
    /// sources, else half the context tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_split: Option<u32>,
}

/// See [`ModelConfig::width_rule`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WidthRule {
    #[default]
    MatchedParams,
    Depth,
}

impl WidthRule {
    fn is_matched_params(&self) -> bool {
        *self == Self::MatchedParams
    }
}

/// See [`ModelConfig::position_grid`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PositionGridKind {
    #[default]
    Table,
    Interpolated,
}

impl PositionGridKind {
    fn is_table(&self) -> bool {
        *self == Self::Table
    }
}

/// The base resolution of the interpolated position grid when none is set: SD3's 256².
pub const DEFAULT_POSITION_BASE_RESOLUTION: u32 = 256;

fn default_depth() -> u32 {
    2
}

fn default_patch_size() -> u32 {
    2
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            depth: default_depth(),
            hidden_size: None,
            num_heads: None,
            patch_size: default_patch_size(),
            qk_norm: false,
            position_grid: PositionGridKind::Table,
            position_base_resolution: None,
            backbone: BackboneKind::Mmdit,
            width_rule: WidthRule::MatchedParams,
            context_split: None,
        }
    }
}

impl ModelConfig {
    pub fn hidden_size(&self) -> u32 {
        self.hidden_size.unwrap_or(64 * self.depth)
    }

    pub fn num_heads(&self) -> u32 {
        self.num_heads.unwrap_or(self.depth)
    }

    pub fn position_base_resolution(&self) -> u32 {
        self.position_base_resolution
            .unwrap_or(DEFAULT_POSITION_BASE_RESOLUTION)
    }
}

/// Limits on the model's size, checked before anything is allocated: a typo such as
/// `depth = 1000` would otherwise ask libtorch for tens of terabytes and abort the process. The
/// paper's largest model is depth 38 (8B parameters); these leave room for much larger ones.
const MAX_DEPTH: u64 = 96;
const MAX_HIDDEN: u64 = 16384;
const MAX_HEADS: u64 = 256;
const MAX_PATCH: u64 = 64;

impl Validate for ModelConfig {
    fn validate(&self, v: &mut Validator) {
        v.count_in("depth", u64::from(self.depth), 1, MAX_DEPTH);
        v.count_in("patch_size", u64::from(self.patch_size), 1, MAX_PATCH);
        // Checked whether given or derived from the depth (64 x depth).
        v.count_in("hidden_size", u64::from(self.hidden_size()), 1, MAX_HIDDEN);
        v.count_in("num_heads", u64::from(self.num_heads()), 1, MAX_HEADS);
        let (h, n) = (self.hidden_size(), self.num_heads());
        if h > 0 && n > 0 && !h.is_multiple_of(n) {
            v.fail(
                "num_heads",
                format!("must divide hidden_size ({h}), got {n}"),
            );
        }
        if let Some(base) = self.position_base_resolution {
            if self.position_grid != PositionGridKind::Interpolated {
                v.fail(
                    "position_base_resolution",
                    "applies to position_grid = \"interpolated\" only",
                );
            }
            v.count_in("position_base_resolution", u64::from(base), 8, 4096);
        }
        if let Some(split) = self.context_split {
            if self.backbone != BackboneKind::Mmdit3 {
                v.fail(
                    "context_split",
                    format!(
                        "applies to backbone = \"mmdit-3\" only (backbone is \"{}\")",
                        self.backbone
                    ),
                );
            }
            v.count_at_least("context_split", u64::from(split), 1);
        }
    }
}

/// The noise formulation by its canonical name (docs/protocol.md section 3) and the
/// resolution-dependent timestep shift.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormulationConfig {
    /// Canonical name, e.g. `rf/lognorm(0.00, 1.00)` (the default), `eps/linear`, `edm(0.00, 0.60)`.
    #[serde(default = "default_formulation")]
    pub name: String,
    /// Timestep shift alpha (1 = none; SD3 uses 3 at 1024^2), or `"auto"`: alpha =
    /// `data.resolution / shift_base_resolution`, the square root of the pixel-count ratio
    /// (SD3 Eq. 23). Read through [`RunConfig::shift_alpha`].
    #[serde(default = "no_shift")]
    pub shift: ShiftSetting,
    /// The base resolution in pixels a side of `shift = "auto"` (default 256, the paper's
    /// pre-training resolution). Absent rather than defaulted in the resolved config, so
    /// configs written before the key existed keep their hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift_base_resolution: Option<u32>,
    /// What the backbone sees as time: `t_eq` (the default, `1000 t_eq` for every family, SD3's
    /// input for rf) or `native` (the LDM step index, EDM's `ln(sigma)/4`, `1000 t` on the
    /// cosine schedule; docs/protocol.md section 1).
    #[serde(default)]
    pub time_input: TimeInputKind,
}

/// The backbone's time input convention ([`FormulationConfig::time_input`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimeInputKind {
    /// `1000 t_eq`, the same function of the noise level for every family.
    #[default]
    #[serde(rename = "t_eq")]
    TEq,
    /// Each family's own input.
    #[serde(rename = "native")]
    Native,
}

fn default_formulation() -> String {
    "rf/lognorm(0.00, 1.00)".to_owned()
}

fn no_shift() -> ShiftSetting {
    ShiftSetting::Alpha(1.0)
}

impl Default for FormulationConfig {
    fn default() -> Self {
        Self {
            name: default_formulation(),
            shift: no_shift(),
            shift_base_resolution: None,
            time_input: TimeInputKind::TEq,
        }
    }
}

impl Validate for FormulationConfig {
    fn validate(&self, v: &mut Validator) {
        if self.name.trim().is_empty() {
            v.fail(
                "name",
                "must name a formulation, e.g. \"rf/lognorm(0.00, 1.00)\"",
            );
        } else if let Err(e) = flowscale_formulations::Formulation::parse(&self.name) {
            // The parser's message lists the families and the closest valid names.
            v.fail("name", e.to_string());
        }
        // alpha = sqrt(m / n) (docs/protocol.md section 7): even 16384^2 against 256^2 gives 64.
        if let ShiftSetting::Alpha(a) = self.shift {
            v.in_range("shift", a, f64::MIN_POSITIVE, MAX_SHIFT, false);
        }
        // The same bounds as data.resolution: "auto" then stays in [1/512, 512].
        if let Some(base) = self.shift_base_resolution {
            v.count_in("shift_base_resolution", u64::from(base), 8, 4096);
        }
    }
}

/// The largest resolution shift accepted; a larger one (say 1e300) only fails late, at the
/// first sample grid.
const MAX_SHIFT: f64 = 1000.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// Linear warm-up, then constant (the paper).
    Constant,
    /// Linear warm-up, then cosine decay to zero at the last step.
    Cosine,
}

/// AdamW. The paper: lr 1e-4 with 1000 warm-up steps; betas and weight decay are not stated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimConfig {
    #[serde(default = "default_lr")]
    pub lr: f64,
    #[serde(default = "default_betas")]
    pub betas: [f64; 2],
    /// 1e-15 with QK-norm for stable bf16 at high resolution (SD3).
    #[serde(default = "default_eps")]
    pub eps: f64,
    #[serde(default)]
    pub weight_decay: f64,
    #[serde(default = "default_warmup")]
    pub warmup_steps: u64,
    #[serde(default = "default_schedule")]
    pub schedule: LrSchedule,
    /// Clip the global gradient norm to this value; absent = no clipping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grad_clip: Option<f64>,
    /// Floor of the cosine schedule (default 0).
    #[serde(default)]
    pub min_lr: f64,
}

fn default_lr() -> f64 {
    1e-4
}

fn default_betas() -> [f64; 2] {
    [0.9, 0.999]
}

fn default_eps() -> f64 {
    1e-8
}

fn default_warmup() -> u64 {
    1000
}

fn default_schedule() -> LrSchedule {
    LrSchedule::Constant
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            lr: default_lr(),
            betas: default_betas(),
            eps: default_eps(),
            weight_decay: 0.0,
            warmup_steps: default_warmup(),
            schedule: default_schedule(),
            grad_clip: None,
            min_lr: 0.0,
        }
    }
}

impl Validate for OptimConfig {
    fn validate(&self, v: &mut Validator) {
        v.at_least("lr", self.lr, 0.0, false);
        for (i, b) in self.betas.iter().enumerate() {
            v.in_range(&format!("betas[{i}]"), *b, 0.0, 1.0, true);
        }
        v.at_least("eps", self.eps, 0.0, false);
        v.at_least("weight_decay", self.weight_decay, 0.0, true);
        if let Some(c) = self.grad_clip {
            v.at_least("grad_clip", c, 0.0, false);
        }
        v.at_least("min_lr", self.min_lr, 0.0, true);
        // Only against a valid lr: a bad lr is already reported and should not cascade.
        if self.lr > 0.0 && self.min_lr > self.lr {
            v.fail(
                "min_lr",
                format!("must not exceed lr ({}), got {}", self.lr, self.min_lr),
            );
        }
    }
}

/// Exponential moving averages of the weights. The paper: decay 0.99, updated every 100 steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmaConfig {
    /// One EMA per decay, all kept and checkpointed.
    #[serde(default = "default_decays")]
    pub decays: Vec<f64>,
    /// Update the EMAs every this many optimiser steps.
    #[serde(default = "default_ema_every")]
    pub every: u64,
    /// Limit each decay to (1 + n)/(10 + n) at the n-th update, so early averages forget the
    /// initialisation (default false: the paper's plain EMA).
    #[serde(default)]
    pub warmup: bool,
    /// EDM2's power-function EMAs with snapshots for post-hoc reconstruction (off by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posthoc: Option<PosthocEmaConfig>,
}

fn default_decays() -> Vec<f64> {
    vec![0.99]
}

fn default_ema_every() -> u64 {
    100
}

impl Default for EmaConfig {
    fn default() -> Self {
        Self {
            decays: default_decays(),
            every: default_ema_every(),
            warmup: false,
            posthoc: None,
        }
    }
}

impl Validate for EmaConfig {
    fn validate(&self, v: &mut Validator) {
        for (i, d) in self.decays.iter().enumerate() {
            v.in_range(&format!("decays[{i}]"), *d, 0.0, 1.0, true);
        }
        v.count_at_least("every", self.every, 1);
        if let Some(p) = &self.posthoc {
            v.section("posthoc", p);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// float32 everywhere.
    Fp32,
    /// float32 master weights, loss, optimiser and EMA; the backbone under bf16 autocast on CUDA
    /// and on CPUs with bf16 matrix instructions (AMX-BF16, AVX512-BF16), fp32 on other CPUs.
    Bf16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Optimiser steps.
    pub steps: u64,
    /// Samples per optimiser step over all ranks: the global batch (the paper's 1024). Each
    /// rank trains on `batch_size / world size` of them.
    pub batch_size: u64,
    /// The most samples one device runs forward and backward at once. A rank's share larger
    /// than this is accumulated in micro-batches of this size (it must divide the share).
    /// Default: the whole share at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub micro_batch_size: Option<u64>,
    /// Removed (accumulation follows from `micro_batch_size`); present only to name the change
    /// when an old config sets it.
    #[serde(default, skip_serializing)]
    pub grad_accum: Option<u64>,
    #[serde(default = "default_precision")]
    pub precision: Precision,
    /// Which blocks recompute their activations in backward instead of keeping them:
    /// `"none"` (default), `"blocks"` (all) or `"every-N"` (one block in N). Trades compute
    /// for memory; the gradients are the same up to float rounding.
    #[serde(default, skip_serializing_if = "Checkpointing::is_none")]
    pub activation_checkpointing: Checkpointing,
    /// ZeRO stage over the data-parallel ranks: 0 (default) replicates the whole state, 1
    /// shards AdamW's moments, 2 the gradients too. Resuming needs the same stage and the same
    /// number of ranks.
    #[serde(default, skip_serializing_if = "ZeroStage::is_replicated")]
    pub zero_stage: ZeroStage,
    /// Capture each micro-batch's forward and backward as a CUDA graph once and replay it
    /// (fixed shapes: no aspect buckets; ZeRO 0 or 1). Removes the per-kernel launch cost that
    /// dominates small models on a GPU; on any other device it is an error.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cuda_graph: bool,
}

fn default_precision() -> Precision {
    Precision::Bf16
}

impl Validate for TrainConfig {
    fn validate(&self, v: &mut Validator) {
        v.count_at_least("steps", self.steps, 1);
        v.count_at_least("batch_size", self.batch_size, 1);
        if let Some(micro) = self.micro_batch_size {
            v.count_at_least("micro_batch_size", micro, 1);
        }
        if self.grad_accum.is_some() {
            v.fail(
                "grad_accum",
                "removed: train.batch_size is now the global batch (all ranks, all \
                 micro-batches), and accumulation follows from train.micro_batch_size, the most \
                 samples a device runs at once",
            );
        }
    }
}
