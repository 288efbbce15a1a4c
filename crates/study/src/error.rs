use thiserror::Error;

#[derive(Debug, Error)]
pub enum StudyError {
    /// A sweep file that cannot be used, with the file and what is wrong.
    #[error("{path}: {message}")]
    Sweep { path: String, message: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] Box<flowscale_train::config::ConfigError>),
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

pub type Result<T> = std::result::Result<T, StudyError>;

pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> StudyError {
    StudyError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl From<flowscale_train::config::ConfigError> for StudyError {
    fn from(e: flowscale_train::config::ConfigError) -> Self {
        StudyError::Config(Box::new(e))
    }
}
