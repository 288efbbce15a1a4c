//! Errors of the trainer and the run layer. Failures of the layers below keep their type (and
//! their message, which names the file, key or tensor); `Invalid` is for bad values.

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{0}")]
    Invalid(String),
    /// NaN or infinite values where sampling needs finite ones (the conditioning, or the
    /// sampled latents of diverged weights): sampling would give NaN images.
    #[error("{0}")]
    NonFinite(String),
    /// A file whose content cannot be used (a checkpoint's state or tensors, a saved config).
    #[error("{}: {reason}", path.display())]
    Corrupt {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error(transparent)]
    Io(#[from] flowscale_core::IoError),
    /// SIGINT or SIGTERM stopped the run after a checkpoint of the step it was in.
    #[error(
        "interrupted by {} at step {step}: checkpoint written to {}; continue with --resume",
        crate::interrupt::name(*signal),
        checkpoint.display()
    )]
    Interrupted {
        signal: i32,
        step: u64,
        checkpoint: std::path::PathBuf,
    },
    /// The run directory is in use by another process.
    #[error(transparent)]
    Locked(#[from] flowscale_core::LockError),
    #[error(transparent)]
    Config(#[from] flowscale_core::config::ConfigError),
    #[error(transparent)]
    Model(#[from] flowscale_models::ModelError),
    #[error(transparent)]
    Torch(#[from] tch::TchError),
    #[error(transparent)]
    Formulation(#[from] flowscale_formulations::FormulationError),
    #[error(transparent)]
    Data(#[from] flowscale_data::DataError),
    #[error(transparent)]
    Encoder(#[from] flowscale_encoders::EncoderError),
    #[error(transparent)]
    TorchExt(#[from] flowscale_torch_ext::TorchExtError),
}

impl TrainError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<std::path::PathBuf>, source: std::io::Error) -> Self {
        Self::Io(flowscale_core::IoError::new(path, source))
    }

    /// The content of the file at `path` cannot be used, for `reason`.
    pub fn corrupt(path: impl Into<std::path::PathBuf>, reason: impl std::fmt::Display) -> Self {
        Self::Corrupt {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}

pub type Result<T> = std::result::Result<T, TrainError>;
