//! SD3's conditioning from three text encoders.

pub mod combine;
pub mod stack;

pub use combine::{combine, ClipPart, Sd3Dims, Sd3Parts, SOURCES};
pub use stack::{ClipSource, Sd3TextStack, T5Source};
