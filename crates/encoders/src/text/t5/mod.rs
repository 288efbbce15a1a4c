//! The T5 encoder (v1.1 gated-GELU and v1.0 ReLU) and its `tokenizer.json` tokenizer.

pub mod config;
pub mod model;

pub use config::T5Config;
pub use model::T5Encoder;
