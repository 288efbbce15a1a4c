//! The layout of a run directory (documented in docs/run-directory.md):
//!
//! ```text
//! <out_dir>/<name>/
//!   config.resolved.toml   the config with every default filled in and every --set applied
//!   checkpoints/           step-XXXXXXXXX/ folders (model, EMAs, optimiser, state.json)
//!   tb/                    TensorBoard event files
//!   metrics.jsonl          one JSON object per logged step, validation and sample event
//!   samples/               PNG sample grids
//!   init.json              with [init]: which tensors came from the source checkpoint
//! ```

use crate::error::{Result, TrainError};
pub use flowscale_core::write_atomic;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct RunDir {
    pub root: PathBuf,
}

impl RunDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn config(&self) -> PathBuf {
        self.root.join("config.resolved.toml")
    }
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }
    pub fn tensorboard(&self) -> PathBuf {
        self.root.join("tb")
    }
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }
    pub fn samples(&self) -> PathBuf {
        self.root.join("samples")
    }
    /// The key report of a run initialised from another run's checkpoint (`[init]`).
    pub fn init_report(&self) -> PathBuf {
        self.root.join(crate::run::INIT_REPORT_FILE)
    }

    /// Creates the directories.
    pub fn create(&self) -> Result<()> {
        for dir in [
            self.root.clone(),
            self.checkpoints(),
            self.tensorboard(),
            self.samples(),
        ] {
            std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
        }
        Ok(())
    }
}

pub(crate) fn io_error(path: &Path, e: std::io::Error) -> TrainError {
    TrainError::io(path, e)
}
