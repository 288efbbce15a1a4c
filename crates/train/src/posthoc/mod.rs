//! EDM2's post-hoc EMA (Karras et al. 2024, Sec. 3, App. C): the trainer tracks power-function
//! EMAs of a few relative stds and stores snapshots of them; afterwards the average of any
//! other std is reconstructed as a linear combination of the snapshots.
//!
//! - [`profile`]: std <-> gamma, `beta_t`, the profiles' inner product, the least-squares fit.
//! - [`tracker`]: the averages the trainer updates and checkpoints (`phema-<std>` groups).
//! - [`snapshots`]: `<run>/posthoc/` — the snapshot files and their checked list.
//! - [`reconstruct`]: the combination of snapshots for a target std and step.
//! - [`reconstructed`]: the result written as a checkpoint eval, generate and export read.
//! - [`reconstruct_run`]: `flowscale ema-reconstruct`: choose the step, reconstruct, write.

pub mod profile;
pub mod reconstruct;
pub mod reconstruct_run;
pub mod reconstructed;
pub mod snapshots;
pub mod tracker;

pub use reconstruct::{reconstruct, Reconstruction};
pub use reconstruct_run::{default_reconstruction_step, reconstruct_run, Written};
pub use tracker::{power_ema_group_name, PowerEmas};
