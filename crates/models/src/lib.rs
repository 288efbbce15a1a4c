//! `flowscale-models`: SD3's MMDiT backbone and the backbones the paper compares it with
//! (MMDiT-3, DiT, CrossDiT, UViT; issue #21), their checkpoint layouts (diffusers folder, SD3
//! single file, flowscale's folder for the others) behind one key map, and analytic cost
//! accounting (issue #4).
//!
//! Variables live in a `tch` VarStore under the diffusers `SD3Transformer2DModel` keys, so
//! `vs.variables()` is a diffusers state dict (including the fixed `pos_embed.pos_embed` table,
//! which is not trainable) and `vs.trainable_variables()` are the parameters.

pub mod activation_checkpointing;
pub mod attention_stats;
pub mod backbone;
pub mod backbone_kind;
pub mod builder;
pub mod checkpoint;
pub mod config;
pub mod cost;
pub mod embeddings;
pub mod error;
pub mod matched_width;
pub mod position_grid;

mod attention;
mod backbone_block;
mod dit_block;
mod joint_block;
mod layers;
mod uvit_block;

#[cfg(test)]
mod parity_tests;

pub use activation_checkpointing::{BlockTape, Checkpointing};
pub use attention_stats::AttentionStats;
pub use backbone::Backbone;
pub use backbone_kind::{BackboneKind, BACKBONES};
pub use builder::ParamInfo;
pub use checkpoint::{load_mmdit, save_mmdit, Layout, LoadedMmdit, StateDict};
pub use config::{MmditConfig, PRESETS};
pub use cost::{forward_cost, param_count, ForwardCost, ParamCount};
pub use error::{KeyReport, ModelError, Result};
pub use layers::Linear;
pub use matched_width::match_mmdit_params;
pub use position_grid::PositionGrid;
