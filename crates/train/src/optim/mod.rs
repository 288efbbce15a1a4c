//! The optimiser: Rust-side AdamW whose moments are plain tensors (so they live in checkpoints),
//! parameter groups, the learning-rate schedule and on-device gradient clipping.

mod adamw;
mod clip;
mod groups;
mod schedule;

pub use adamw::{restore_named, AdamW, AdamWConfig};
pub use clip::{clip_grad_norm, clip_scale, grad_norm};
pub use groups::{by_decay, decays};
pub use schedule::LrScheduler;
