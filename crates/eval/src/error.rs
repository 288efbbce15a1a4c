//! Errors of the eval crate; each names the file, key or tensor it is about.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: expected shape {expected}, got {got:?}")]
    Shape {
        what: String,
        expected: String,
        got: Vec<i64>,
    },
    #[error("{0}")]
    Invalid(String),
    /// A file whose content cannot be used (a damaged image, statistics or classifier file).
    #[error("{}: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error(transparent)]
    Train(#[from] flowscale_train::TrainError),
    #[error(transparent)]
    Data(#[from] flowscale_data::DataError),
    #[error(transparent)]
    Encoder(#[from] flowscale_encoders::EncoderError),
}

impl From<flowscale_core::IoError> for EvalError {
    fn from(e: flowscale_core::IoError) -> Self {
        EvalError::Io {
            path: e.path,
            source: e.source,
        }
    }
}

pub type Result<T> = std::result::Result<T, EvalError>;

impl EvalError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        EvalError::Io {
            path: path.into(),
            source,
        }
    }

    pub fn corrupt(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        EvalError::Corrupt {
            path: path.into(),
            reason: reason.to_string(),
        }
    }

    pub fn shape(what: impl Into<String>, expected: impl Into<String>, got: &[i64]) -> Self {
        EvalError::Shape {
            what: what.into(),
            expected: expected.into(),
            got: got.to_vec(),
        }
    }
}
