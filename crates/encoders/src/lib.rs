//! `flowscale-encoders`: frozen networks. The text part (issue #6): BERT/MiniLM, the CLIP
//! text transformer, the T5 encoder, their tokenizers, and the SD3 conditioning stack; see
//! [`text`]. CLIP as a metric network (vision tower, `CLIPModel`, preprocessing, CLIP score;
//! issue #7) is [`clip`]. Image autoencoders (issue #5: diffusers' `AutoencoderKL` for the SD3,
//! SDXL and SD 1.x VAEs, the tiny TAEF2, identity) behind one interface are [`autoencoders`].
//!
//! Models keep their variables in a `tch` VarStore under the Hugging Face / diffusers
//! checkpoint keys, so a model folder (`config.json` + `model.safetensors` or
//! `diffusion_pytorch_model.safetensors`, sharded or not) loads key-exactly; loaders name every
//! missing, unexpected and mis-shaped key.

pub mod autoencoders;
pub mod clip;
pub mod error;
pub mod nn;
pub mod text;
pub mod weights;

pub use error::{EncoderError, KeyReport, Result};
