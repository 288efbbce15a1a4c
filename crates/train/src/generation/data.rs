//! What a generator's rows condition on and how its samples become pixels. From a run this is
//! the run's data (class labels or captions; the decoder of the autoencoder its shards were
//! encoded with); from an exported backbone it is prompts and the autoencoder given with it,
//! since an export carries neither a class embedding nor a shard manifest.

use crate::error::Result;
use crate::run::{CondSource, PixelDecoder, RunData};
use tch::Tensor;

pub enum GenerationData {
    Run(RunData),
    Exported(PixelDecoder),
}

/// What the rows of a generation request are.
#[derive(Debug, Clone, Copy)]
pub enum Conditions<'a> {
    /// Class labels with these names (class runs).
    Classes(&'a [String]),
    /// Prompts (text runs and exported backbones).
    Text,
}

impl GenerationData {
    pub fn conditions(&self) -> Conditions<'_> {
        match self {
            Self::Run(data) => match data.cond_source() {
                CondSource::Labels => Conditions::Classes(data.class_names()),
                CondSource::Text(_) => Conditions::Text,
            },
            Self::Exported(_) => Conditions::Text,
        }
    }

    /// Model outputs `[B, C, h, w]` as pixels in [-1, 1] on the CPU.
    pub fn to_pixels(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Run(data) => data.to_pixels(x),
            Self::Exported(decoder) => decoder.to_cpu_pixels(x),
        }
    }
}
