//! A run's checkpoint as the run layer reads it: which folder a request names (a checkpoint
//! folder, or a run directory with a step choice), the run config beside it, its weight sets
//! (raw = `model.safetensors`, EMAs = `ema-<decay>.safetensors`, power-function EMAs =
//! `phema-<std>.safetensors`, tracked or reconstructed post hoc) and which of them a user chose.

use super::model::RunModel;
use crate::checkpoint::{CheckpointStore, LoadedCheckpoint, STATE_FILE};
use crate::config::RunConfig;
pub use crate::config::WeightChoice;
use crate::error::{Result, TrainError};
use crate::state::TrainState;
use flowscale_models::MmditConfig;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::Tensor;

/// Checkpoint group name of an EMA: `ema-0.999`.
pub fn ema_group_name(decay: f64) -> String {
    format!("ema-{decay}")
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StepChoice {
    Latest,
    Step(u64),
    BestValLoss,
}

/// Finds the checkpoint folder the request names.
pub fn resolve_checkpoint(source: &Path, step: StepChoice) -> Result<PathBuf> {
    if source.join(STATE_FILE).is_file() {
        if step != StepChoice::Latest {
            return Err(TrainError::Invalid(format!(
                "{} is a checkpoint; --step and --best-val-loss choose among the checkpoints of \
                 a run directory",
                source.display()
            )));
        }
        return Ok(source.to_path_buf());
    }
    let store = CheckpointStore::new(source.join("checkpoints"), 1, 0);
    let all = store.list()?;
    let available = || {
        all.iter()
            .map(|(s, _)| s.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some((_, latest)) = all.last() else {
        return Err(TrainError::Invalid(format!(
            "{}: neither a checkpoint folder (with state.json) nor a run directory with checkpoints",
            source.display()
        )));
    };
    let wanted = match step {
        StepChoice::Latest => return Ok(latest.clone()),
        StepChoice::Step(n) => n,
        StepChoice::BestValLoss => match best_val_loss_step(latest)? {
            Some(s) => s,
            None => {
                return Err(TrainError::Invalid(format!(
                    "{}: the run has no validation loss yet",
                    source.display()
                )))
            }
        },
    };
    all.iter()
        .find(|(s, _)| *s == wanted)
        .map(|(_, p)| p.clone())
        .ok_or_else(|| {
            TrainError::Invalid(format!(
                "{}: no checkpoint of step {wanted} (kept: {}); raise checkpoint.keep_every to keep more",
                source.display(),
                available()
            ))
        })
}

/// The paper's checkpoint rule: the step of the lowest validation loss, as recorded in the
/// state of the run's newest checkpoint `latest` (`None` before the first validation).
pub fn best_val_loss_step(latest: &Path) -> Result<Option<u64>> {
    Ok(read_state(latest)?.best_val_loss.map(|(_, step)| step))
}

/// A checkpoint's `state.json` alone, without its tensors.
fn read_state(dir: &Path) -> Result<TrainState> {
    let path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| TrainError::corrupt(&path, e))
}

/// A checkpoint whose files match their checksums and whose state is its folder's step.
pub fn load_intact(path: &Path) -> Result<LoadedCheckpoint<TrainState>> {
    let ck: LoadedCheckpoint<TrainState> = CheckpointStore::load(path)?;
    if ck.state.step != ck.step {
        return Err(TrainError::corrupt(
            path.join(crate::checkpoint::STATE_FILE),
            format!(
                "records step {}, its folder is step {}",
                ck.state.step, ck.step
            ),
        ));
    }
    Ok(ck)
}

/// A checkpoint folder read whole (checksums and step checked), with the run directory it sits
/// in when it sits in one.
pub struct RunCheckpoint {
    /// `<run>/checkpoints/step-N/`: its state and tensor groups.
    pub checkpoint: LoadedCheckpoint<TrainState>,
    /// The run directory holding the checkpoint (`<run>`), when the folder sits in one.
    pub run_dir: Option<PathBuf>,
}

impl RunCheckpoint {
    /// Reads the checkpoint `source` names at `step` (see [`resolve_checkpoint`]).
    pub fn open(source: &Path, step: StepChoice) -> Result<Self> {
        let dir = resolve_checkpoint(source, step)?;
        let checkpoint = load_intact(&dir)?;
        // `<run>/checkpoints/step-N`, or a reconstructed post-hoc EMA's
        // `<run>/posthoc/reconstructed/std-S/step-N`.
        let run_dir = dir
            .parent()
            .filter(|p| p.file_name().is_some_and(|n| n == "checkpoints"))
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .or_else(|| crate::posthoc::reconstructed::run_dir_of_reconstructed(&dir));
        Ok(Self {
            checkpoint,
            run_dir,
        })
    }

    /// `<run>/checkpoints/step-N/`.
    pub fn dir(&self) -> &Path {
        &self.checkpoint.dir
    }

    /// The resolved config the run recorded (`<run>/config.resolved.toml`).
    pub fn run_config(&self) -> Result<RunConfig> {
        let run_dir = self.run_dir.as_ref().ok_or_else(|| {
            TrainError::Invalid(format!(
                "{}: not inside <run>/checkpoints/, so the run config is unknown",
                self.dir().display()
            ))
        })?;
        Ok(crate::config::load(
            &crate::run_dir::RunDir::new(run_dir).config(),
            &[],
        )?)
    }

    /// The backbone the checkpoint was written with (its `config.json`).
    pub fn backbone_config(&self) -> Result<MmditConfig> {
        let path = self.dir().join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
        MmditConfig::from_json(&text).map_err(|e| TrainError::corrupt(&path, e))
    }

    /// Loads weight set `set` into `model`: the raw weights first (they carry the fixed
    /// buffers, which EMAs do not), then the EMA over them; every tensor checked by the model.
    pub fn load_weights(&self, model: &RunModel, set: WeightSet) -> Result<()> {
        let sets = match set {
            WeightSet::Raw => vec![WeightSet::Raw],
            ema => vec![WeightSet::Raw, ema],
        };
        for s in sets {
            let group = s.group();
            let path = self.dir().join(format!("{group}.safetensors"));
            model.load_weights(self.group(&group)?, &path)?;
        }
        Ok(())
    }

    /// Decays of the checkpoint's EMAs, ascending.
    pub fn ema_decays(&self) -> Vec<f64> {
        let mut d: Vec<f64> = self
            .checkpoint
            .groups
            .keys()
            .filter_map(|k| k.strip_prefix("ema-").and_then(|d| d.parse().ok()))
            .collect();
        d.sort_by(f64::total_cmp);
        d
    }

    /// Relative stds of the checkpoint's power-function EMAs, ascending.
    pub fn power_ema_stds(&self) -> Vec<f64> {
        let mut s: Vec<f64> = self
            .checkpoint
            .groups
            .keys()
            .filter_map(|k| k.strip_prefix("phema-").and_then(|s| s.parse().ok()))
            .collect();
        s.sort_by(f64::total_cmp);
        s
    }

    /// The tensors of group `name`.
    pub fn group(&self, name: &str) -> Result<&HashMap<String, Tensor>> {
        self.checkpoint.group(name)
    }

    /// The weight set `choice` names, as a concrete [`WeightSet`]: an EMA without a decay must
    /// be the run's only one, and a named decay must exist.
    pub fn weight_set(&self, choice: &WeightChoice) -> Result<WeightSet> {
        let emas = self.ema_decays();
        match choice {
            WeightChoice::Raw => Ok(WeightSet::Raw),
            WeightChoice::Ema(decay) => {
                let d = match (decay, emas.as_slice()) {
                    (Some(d), _) => *d,
                    (None, [only]) => *only,
                    (None, []) => {
                        return Err(TrainError::Invalid(format!(
                            "{}: the run keeps no EMA; use --weights raw",
                            self.dir().display()
                        )))
                    }
                    (None, _) => {
                        return Err(TrainError::Invalid(format!(
                            "{}: the run keeps EMAs {emas:?}; choose one with --weights ema:DECAY",
                            self.dir().display()
                        )))
                    }
                };
                if !emas.contains(&d) {
                    return Err(TrainError::Invalid(format!(
                        "{}: no EMA with decay {d} (the run keeps {emas:?})",
                        self.dir().display()
                    )));
                }
                Ok(WeightSet::Ema(d))
            }
            WeightChoice::PowerEma(wanted) => {
                let stds = self.power_ema_stds();
                let s = match (wanted, stds.as_slice()) {
                    (Some(s), _) => *s,
                    (None, [only]) => *only,
                    (None, _) => {
                        return Err(TrainError::Invalid(format!(
                            "{}: the checkpoint keeps power-function EMAs {stds:?}; choose one \
                             with --weights phema:STD",
                            self.dir().display()
                        )))
                    }
                };
                if !stds.contains(&s) {
                    return Err(TrainError::Invalid(format!(
                        "{}: no power-function EMA with std {s} (the checkpoint keeps {stds:?}; \
                         `flowscale ema-reconstruct` writes others)",
                        self.dir().display()
                    )));
                }
                Ok(WeightSet::PowerEma(s))
            }
        }
    }
}

/// One concrete set of weights in a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WeightSet {
    Raw,
    Ema(f64),
    /// A power-function EMA of relative std (tracked, or reconstructed post hoc).
    PowerEma(f64),
}

impl WeightSet {
    /// The checkpoint group holding it.
    pub fn group(self) -> String {
        match self {
            Self::Raw => "model".into(),
            Self::Ema(d) => ema_group_name(d),
            Self::PowerEma(s) => crate::posthoc::power_ema_group_name(s),
        }
    }

    /// As a user writes it: `raw`, `ema:0.999`.
    pub fn label(self) -> String {
        match self {
            Self::Raw => "raw".into(),
            Self::Ema(d) => format!("ema:{d}"),
            Self::PowerEma(s) => format!("phema:{s}"),
        }
    }
}
