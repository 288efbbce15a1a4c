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
    Config(#[from] flowscale_train::config::ConfigError),
    #[error("run {id}: {source}")]
    Train {
        id: String,
        #[source]
        source: flowscale_train::error::TrainError,
    },
}

pub type Result<T> = std::result::Result<T, StudyError>;

pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> StudyError {
    StudyError::Io {
        path: path.display().to_string(),
        source,
    }
}
