//! `flowscale-encoders`: frozen networks. Today the text part (issue #6): BERT/MiniLM, the CLIP
//! text transformer, the T5 encoder, their tokenizers, and the SD3 conditioning stack; see
//! [`text`]. CLIP as a metric network (vision tower, `CLIPModel`, preprocessing, CLIP score;
//! issue #7) is [`clip`]. Autoencoders (issue #5) will sit beside them.
//!
//! Models keep their variables in a `tch` VarStore under the Hugging Face checkpoint keys, so a
//! Hugging Face folder (`config.json` + `model.safetensors`, sharded or not) loads key-exactly;
//! loaders name every missing, unexpected and mis-shaped key.

pub mod clip;
pub mod error;
pub mod text;
pub mod weights;

pub use error::{EncoderError, KeyReport, Result};
