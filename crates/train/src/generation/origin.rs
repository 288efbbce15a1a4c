//! Where a generator's weights came from, for the record of what decided the images and for the
//! line that reports them.

use crate::run::WeightSet;
use flowscale_encoders::autoencoders::AutoencoderSpec;
use flowscale_models::Layout;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub enum Origin {
    /// A checkpoint of a run directory, at one of its weight sets.
    Run {
        run_dir: PathBuf,
        /// `<run>/checkpoints/step-N/`.
        checkpoint: PathBuf,
        step: u64,
        weights: WeightSet,
    },
    /// An exported backbone (diffusers folder or SD3 single file) with the autoencoder given
    /// for it.
    Export {
        checkpoint: PathBuf,
        layout: Layout,
        autoencoder: AutoencoderSpec,
    },
}

impl Origin {
    /// `RUN (step N, ema:0.999 weights)` or `CHECKPOINT (diffusers export)`.
    pub fn describe(&self) -> String {
        match self {
            Self::Run {
                run_dir,
                step,
                weights,
                ..
            } => format!(
                "{} (step {step}, {} weights)",
                run_dir.display(),
                weights.label()
            ),
            Self::Export {
                checkpoint, layout, ..
            } => format!("{} ({} export)", checkpoint.display(), layout_name(*layout)),
        }
    }
}

/// The layout as `flowscale export --format` names it.
pub fn layout_name(layout: Layout) -> &'static str {
    match layout {
        Layout::Diffusers => "diffusers",
        Layout::Sd3 { .. } => "sd3",
        Layout::Flowscale => "flowscale",
    }
}
