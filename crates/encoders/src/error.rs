//! Errors of the encoders crate.

use std::path::PathBuf;

/// Key and shape differences between a checkpoint and the model it is loaded into.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KeyReport {
    /// Keys the model needs that the checkpoint lacks.
    pub missing: Vec<String>,
    /// Keys in the checkpoint that the model does not have.
    pub unexpected: Vec<String>,
    /// `(key, expected shape, found shape)`.
    pub mis_shaped: Vec<(String, Vec<i64>, Vec<i64>)>,
}

impl KeyReport {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.mis_shaped.is_empty()
    }
}

impl std::fmt::Display for KeyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            parts.push(format!("missing keys: {}", self.missing.join(", ")));
        }
        if !self.unexpected.is_empty() {
            parts.push(format!("unexpected keys: {}", self.unexpected.join(", ")));
        }
        if !self.mis_shaped.is_empty() {
            let shapes: Vec<String> = self
                .mis_shaped
                .iter()
                .map(|(k, want, got)| format!("{k} (expected {want:?}, found {got:?})"))
                .collect();
            parts.push(format!("mis-shaped keys: {}", shapes.join(", ")));
        }
        write!(f, "{}", parts.join("; "))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),
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
