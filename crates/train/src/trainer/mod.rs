//! `flowscale train`: the loop over data, formulation, backbone and loss, with its hooks.
//!
//! Determinism: every random draw of the loop comes from one host generator ([`FlowRng`]) whose
//! state is checkpointed (timesteps, the seeds of the noise tensors, CFG dropout), the data order
//! from a [`flowscale_data::BatchSampler`] position, and the initial weights from `run.seed`.
//! So a run resumed from a checkpoint continues bit-identically on CPU.
//!
//! Host synchronisation: the loss, per-t-bin losses and gradient norm accumulate on the device
//! and are read only every `logging.every` steps.

mod data_source;
mod feed;
mod hooks;
pub mod latent_data;
mod params;
mod setup;

pub use data_source::PixelData;
pub use latent_data::LatentData;
pub use params::{trainable, CONDITIONER_PREFIX};
pub use setup::{TrainOptions, Trainer};

use crate::error::Result;

/// Trains the run `config` describes (resuming when asked) and returns the final state.
pub fn train(
    config: crate::config::RunConfig,
    options: TrainOptions,
) -> Result<crate::state::TrainState> {
    let mut trainer = Trainer::new(config, options)?;
    trainer.run()?;
    Ok(trainer.state().clone())
}
