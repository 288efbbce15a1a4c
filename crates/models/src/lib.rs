//! `flowscale-models`: SD3's MMDiT backbone, its checkpoint layouts (diffusers folder, SD3
//! single file) behind one key map, and analytic cost accounting (issue #4).
//!
//! Variables live in a `tch` VarStore under the diffusers `SD3Transformer2DModel` keys, so
//! `vs.variables()` is a diffusers state dict (including the fixed `pos_embed.pos_embed` table,
//! which is not trainable) and `vs.trainable_variables()` are the parameters.

pub mod activation_checkpointing;
pub mod attention_stats;
pub mod builder;
pub mod checkpoint;
pub mod config;
pub mod cost;
pub mod embeddings;
pub mod error;
pub mod mmdit;
pub mod position_grid;

mod attention;
mod joint_block;
mod layers;

pub use activation_checkpointing::{BlockTape, Checkpointing};
pub use attention_stats::AttentionStats;
pub use builder::ParamInfo;
pub use checkpoint::{load_mmdit, save_mmdit, Layout, LoadedMmdit, StateDict};
pub use config::{MmditConfig, PRESETS};
pub use cost::{forward_cost, param_count, ForwardCost, ParamCount};
pub use error::{KeyReport, ModelError, Result};
pub use layers::Linear;
pub use mmdit::Mmdit;
pub use position_grid::PositionGrid;
