//! The CLIP text encoder (CLIP-L/14, OpenCLIP bigG/14 in Hugging Face form) and its BPE
//! tokenizer.

pub mod bpe;
pub mod clean;
pub mod config;
pub mod model;
pub mod tokenizer;

pub use bpe::ClipBpe;
pub use config::ClipTextConfig;
pub use model::{ClipText, ClipTextOutput};
pub use tokenizer::{ClipPadding, ClipTokenizer};
