use std::path::PathBuf;

use flowscale_core::config::ConfigError;
use flowscale_core::IoError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StudyError {
    /// Reading or writing a file failed; the error names the file.
    #[error(transparent)]
    Io(#[from] IoError),
    /// A sweep, run or eval config that does not load: the file, the dotted keys and what is
    /// allowed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A value that cannot be used (a malformed line of a run's log, a sweep whose runs
    /// collide), with the file or run it comes from.
    #[error("{what}: {message}")]
    Invalid { what: String, message: String },
    /// Drawing or encoding a plot failed.
    #[error("{}: plot: {message}", path.display())]
    Plot { path: PathBuf, message: String },
    /// A checkpoint's model config that does not describe a model.
    #[error("{}: {source}", path.display())]
    Model {
        path: PathBuf,
        #[source]
        source: flowscale_models::ModelError,
    },
    #[error("run {id}: evaluation: {source}")]
    Eval {
        id: String,
        #[source]
        source: Box<flowscale_eval::error::EvalError>,
    },
    #[error("run {id}: {source}")]
    Train {
        id: String,
        // Boxed: the trainer's error is large and would bloat every Result of this crate.
        #[source]
        source: Box<flowscale_train::error::TrainError>,
    },
}

impl StudyError {
    /// A bad value found in `what` (a file, a run).
    pub(crate) fn invalid(what: impl std::fmt::Display, message: impl Into<String>) -> Self {
        StudyError::Invalid {
            what: what.to_string(),
            message: message.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, StudyError>;
