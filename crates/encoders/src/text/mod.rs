//! Text encoders and tokenizers.

pub mod bert;
pub mod clip;
pub mod conditioning;
pub mod config;
pub mod encoder;
pub mod frozen;
pub mod hf_tokenizer;
pub mod sd3;
pub mod source_span;
pub mod t5;
pub mod token_count;

pub use bert::{Bert, BertConfig, MiniLm, SentenceEmbeddings};
pub use clip::{ClipPadding, ClipText, ClipTextConfig, ClipTextOutput, ClipTokenizer};
pub use conditioning::TextConditioning;
pub use config::TextEncoderConfig;
pub use encoder::{MiniLmText, TextEncoder};
pub use frozen::Frozen;
pub use hf_tokenizer::{HfTokenizer, Padding, TokenBatch};
pub use sd3::{Sd3Dims, Sd3TextStack};
pub use source_span::TextSourceSpan;
pub use t5::{T5Config, T5Encoder};
pub use token_count::TokenCount;
