//! Inference: prompts (text models) or classes (class runs) to images, as `flowscale generate`
//! does it. Two sources open into one [`Generator`] (model + conditioner + decoder +
//! formulation), so sampling and everything after it is one code path:
//!
//! - [`from_run`]: a run directory or checkpoint folder, opened through the run layer
//!   ([`crate::run`]), so images come from the model, conditioner and decoder that trained, with
//!   the run's text encoder (or another text config) turning prompts into conditioning.
//! - [`from_export`]: an exported backbone (diffusers folder or SD3 single file) with the text
//!   config, autoencoder and formulation it was trained with, each checked against it.
//! - [`data`]: what the rows condition on and how samples become pixels, for either source.
//! - [`rows`]: what each output row asks for, checked against what the model conditions on, as
//!   the conditioner's input; long prompts are named.
//! - [`generator`]: seeded sampling (negative prompt, dropped sources).
//! - [`origin`]: where the weights came from, for the record.
//!
//! An empty prompt is the unconditional sample: its conditioning is all zeros, exactly what
//! training's conditioning dropout shows the model, not the encoder's output for an empty
//! string (which the model never learnt to read as "no prompt").

pub mod data;
pub mod from_export;
pub mod from_run;
pub mod generator;
pub mod origin;
pub mod rows;

pub use data::{Conditions, GenerationData};
pub use from_export::{parse_autoencoder, FromExport, DEFAULT_FORMULATION, DEFAULT_SHIFT};
pub use from_run::FromRun;
pub use generator::{Generator, SampleRequest};
pub use origin::Origin;
pub use rows::{row_inputs, RowInputs, RowRequest};
