//! The run layer: what a run *is*, independent of what is done with it. The trainer, `flowscale
//! eval`, `flowscale generate` and `flowscale export` build a run's model and data here, so
//! evaluation, generation and export use the code that trained it (no second copy of model
//! set-up, checkpoint restore or forward).
//!
//! - [`RunModel`]: backbone + conditioning provider from `[model]`/`[conditioning]`, trained
//!   tensors under checkpoint names, weight loading with every key checked, the forward pass
//!   under the run's precision.
//! - [`RunData`]: pixel or latent data from `[data]`, what it conditions on ([`CondSource`]:
//!   labels or per-sample captions), its validation inputs, its decoder to pixels and the FID
//!   reference.
//! - [`RunCheckpoint`]: a checkpoint folder chosen by step, its weight sets and the run config.
//! - [`init_from_checkpoint`]: a fresh run's model from another run's weights (`[init]`), with
//!   the [`InitReport`] of loaded, new, regenerated and dropped tensors.

mod checkpoint;
mod cond_source;
mod data;
mod decoder;
mod init;
mod latent_data;
mod model;
mod pixel_data;

pub use checkpoint::{
    best_val_loss_step, ema_group_name, load_intact, resolve_checkpoint, RunCheckpoint, StepChoice,
    WeightChoice, WeightSet,
};
pub use cond_source::{CondSource, TextSource};
pub use data::RunData;
pub use decoder::PixelDecoder;
pub use init::{init_from_checkpoint, InitReport, INIT_REPORT_FILE};
pub use latent_data::{LatentData, LatentPosition};
pub use model::{backbone_config, ConditionerSpec, RunModel, RunModelSpec, CONDITIONER_PREFIX};
pub use pixel_data::PixelData;
