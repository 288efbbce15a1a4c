//! Typed errors of the crate.

use thiserror::Error;

/// Everything that can go wrong in this crate.
#[derive(Debug, Error)]
pub enum FormulationError {
    /// A formulation name that does not parse; lists the families and the closest valid names.
    #[error("cannot parse formulation name {name:?}: {reason}.\n  families: {families}\n  closest valid names: {suggestions}")]
    Parse {
        name: String,
        reason: String,
        families: String,
        suggestions: String,
    },
    /// A parameter outside its valid range (e.g. a mode scale above 2/(pi-2)).
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// A tensor of the wrong shape or kind.
    #[error("invalid tensor: {0}")]
    InvalidTensor(String),
    /// An error raised by libtorch.
    #[error(transparent)]
    Torch(#[from] tch::TchError),
    /// An I/O error while writing a table.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Result alias of the crate.
pub type Result<T> = std::result::Result<T, FormulationError>;
