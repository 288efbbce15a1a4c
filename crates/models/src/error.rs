//! Errors of the models crate.

use std::path::PathBuf;

/// A shape or key problem between a checkpoint and the model it is loaded into.
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
    /// Compares the tensors `found` with the `(name, shape)` pairs a model `expects`. Names in
    /// `optional` may be present (with the expected shape) or absent, and are never unexpected.
    /// Every list comes back sorted.
    pub fn compare<'a>(
        expects: impl IntoIterator<Item = (&'a str, Vec<i64>)>,
        optional: &std::collections::HashSet<String>,
        found: &std::collections::HashMap<String, tch::Tensor>,
    ) -> Self {
        let mut report = Self::default();
        let mut known = std::collections::HashSet::new();
        for (name, shape) in expects {
            known.insert(name);
            match found.get(name) {
                None if optional.contains(name) => {}
                None => report.missing.push(name.to_owned()),
                Some(t) if t.size() != shape => {
                    report.mis_shaped.push((name.to_owned(), shape, t.size()))
                }
                Some(_) => {}
            }
        }
        report.unexpected = found
            .keys()
            .filter(|k| !known.contains(k.as_str()))
            .cloned()
            .collect();
        report.missing.sort();
        report.unexpected.sort();
        report.mis_shaped.sort();
        report
    }

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
pub enum ModelError {
    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),
    #[error("{0}")]
    TorchExt(#[from] flowscale_torch_ext::TorchExtError),
    #[error("invalid backbone config: {0}")]
    Config(String),
    #[error("invalid input: {0}")]
    Input(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error("{path}: checkpoint does not match the model: {report}")]
    Keys { path: PathBuf, report: KeyReport },
}

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ModelError::Io {
            path: path.into(),
            source,
        }
    }
    pub(crate) fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        ModelError::Format {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl From<flowscale_core::IoError> for ModelError {
    fn from(e: flowscale_core::IoError) -> Self {
        ModelError::Io {
            path: e.path,
            source: e.source,
        }
    }
}

pub type Result<T> = std::result::Result<T, ModelError>;
