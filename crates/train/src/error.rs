//! Errors of the trainer.

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Torch(#[from] tch::TchError),
    #[error(transparent)]
    Formulation(#[from] flowscale_formulations::FormulationError),
    #[error(transparent)]
    Data(#[from] flowscale_data::DataError),
    #[error(transparent)]
    Encoder(#[from] flowscale_encoders::EncoderError),
}

pub type Result<T> = std::result::Result<T, TrainError>;
