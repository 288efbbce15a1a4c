//! Errors of the data layer; every one names the file or the value at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Torch(#[from] tch::TchError),
    #[error(transparent)]
    Encoder(#[from] flowscale_encoders::EncoderError),
    /// A config file that cannot be read or has bad keys or values (every one is named).
    #[error(transparent)]
    Config(#[from] flowscale_core::config::ConfigError),
}

impl From<flowscale_core::IoError> for DataError {
    fn from(e: flowscale_core::IoError) -> Self {
        DataError::Io {
            path: e.path,
            source: e.source,
        }
    }
}

pub type Result<T> = std::result::Result<T, DataError>;

impl DataError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    pub(crate) fn corrupt(path: &std::path::Path, reason: impl Into<String>) -> Self {
        Self::Corrupt {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}
