//! `flowscale-eval`: what a study reports about a run (issue #7, docs/protocol.md section 4).
//!
//! - [`frechet`]: the Frechet distance between Gaussian feature statistics, in float64 with a
//!   symmetric eigen-decomposition square root; [`stats`]: mean and covariance of features.
//! - [`inception`]: FID's Inception-v3 (TorchScript) with pytorch-fid's preprocessing;
//!   [`reference`]: reference statistics of an image folder, cached with provenance, for any
//!   [`feature_net::FeatureNet`]; [`reference_root`]: the reference covariance's square root,
//!   cached next to them, so that each sampler setting's FID needs no work on the reference side.
//! - [`fid_inputs`]: the inputs of `flowscale fid` (image folders, pytorch-fid `.npz`
//!   statistics, `.npy` features) with [`npy`], a bounded reader of numpy arrays.
//! - [`clip_metric`]: CLIP score (raw cosine and torchmetrics' x100) and CLIP image features
//!   for FID, from a Hugging Face `CLIPModel` folder.
//! - [`rank`]: the paper's ranking (non-dominated sorting per setting, mean rank over settings).

pub mod classifier;
pub mod clip_metric;
pub mod coco;
pub mod conditions;
pub mod config;
pub mod csv;
pub mod error;
pub mod evaluate;
pub mod feature_net;
pub mod fid_inputs;
pub mod frechet;
pub mod hash;
pub mod image_io;
pub mod inception;
pub mod loaded_run;
pub mod npy;
pub mod pareto;
pub mod protocol;
pub mod rank;
pub mod reference;
pub mod reference_root;
pub mod result_rows;
pub mod results;
pub mod stats;

pub use error::{EvalError, Result};
pub use frechet::{frechet_distance, PreparedReference, TraceForm};
pub use stats::FeatureStats;
