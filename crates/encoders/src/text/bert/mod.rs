//! BERT (Hugging Face layout) and the sentence-transformers all-MiniLM-L6-v2 encoder built on it.

pub mod config;
pub mod minilm;
pub mod model;

pub use config::BertConfig;
pub use minilm::{MiniLm, SentenceEmbeddings};
pub use model::Bert;
