use thiserror::Error;

/// An error raised inside libtorch (the C++ exception's message) or by an argument check.
#[derive(Debug, Error)]
pub enum TorchExtError {
    #[error("libtorch error in {call}: {message}")]
    Torch { call: &'static str, message: String },
    #[error("invalid argument to {call}: {message}")]
    Argument { call: &'static str, message: String },
}
