//! Inference from a run: prompts (text runs) or classes (class runs) to images, as
//! `flowscale generate` does it. The run is opened through the run layer ([`crate::run`]), so
//! images come from the model, conditioner and decoder that trained, with the run's text encoder
//! (or another text config) turning prompts into conditioning.
//!
//! - [`rows`]: what each output row asks for, checked against what the run conditions on, as
//!   the conditioner's input; long prompts are named.
//! - [`generator`]: the opened run and seeded sampling (negative prompt, dropped sources).
//!
//! An empty prompt is the unconditional sample: its conditioning is all zeros, exactly what
//! training's conditioning dropout shows the model, not the encoder's output for an empty
//! string (which the model never learnt to read as "no prompt").

pub mod generator;
pub mod rows;

pub use generator::{Generator, GeneratorRequest, SampleRequest};
pub use rows::{row_inputs, RowInputs, RowRequest};
