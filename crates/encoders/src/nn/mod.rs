//! Generic building blocks of the frozen networks, with PyTorch / Hugging Face parameter names
//! (`weight`, `bias`): used by the text encoders, CLIP and the autoencoders. Parameters start at
//! zero (norm scales at one): every network here is loaded from a checkpoint (tests that need
//! random weights re-randomise them, see [`crate::text::frozen::randomize`]).
//!
//! The linear layer is the models crate's [`flowscale_models::Linear`] (built here with
//! [`Linear::new`]), so the workspace has one.

mod activation;
mod attention;
mod conv;
mod embedding;
mod group_norm;
mod layer_norm;
mod upsample;

pub use activation::Activation;
pub(crate) use attention::{key_mask_bias, merge_heads, split_heads};
pub(crate) use conv::Conv2d;
pub(crate) use embedding::Embedding;
pub(crate) use flowscale_models::Linear;
pub(crate) use group_norm::GroupNorm;
pub(crate) use layer_norm::LayerNorm;
pub(crate) use upsample::upsample_nearest2x;

/// The starting value of weights and biases.
const ZERO: tch::nn::Init = tch::nn::Init::Const(0.0);
/// The starting value of norm scales.
const ONE: tch::nn::Init = tch::nn::Init::Const(1.0);
