//! Errors of the encoders crate.

use std::path::PathBuf;

/// Key and shape differences between a checkpoint and the model it is loaded into (the same
/// report the MMDiT loaders give).
pub use flowscale_models::error::KeyReport;

#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),
    /// Reading safetensors through the models crate's reader.
    #[error(transparent)]
    Model(#[from] flowscale_models::error::ModelError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error("{path}: checkpoint does not match the model: {report}")]
    Keys { path: PathBuf, report: KeyReport },
    #[error("{path}: tokenizer: {message}")]
    Tokenizer { path: PathBuf, message: String },
    #[error("invalid input: {0}")]
    Input(String),
    /// A config file that cannot be read or has bad keys or values (every one is named).
    #[error(transparent)]
    Config(#[from] flowscale_core::config::ConfigError),
}

impl EncoderError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        EncoderError::Io {
            path: path.into(),
            source,
        }
    }
    pub(crate) fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        EncoderError::Format {
            path: path.into(),
            message: message.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, EncoderError>;
