//! `flowscale export`: one checkpoint's chosen weights in the layout another tool loads, with a
//! model card.
//!
//! Source: a checkpoint folder, or a run directory with `--step N`, `--best-val-loss` (the step
//! whose first-EMA validation loss was lowest, the paper's selection) or, by default, the newest
//! checkpoint. Weights: `raw`, or an EMA (`ema` when the run keeps one, `ema:0.999` to choose).
//! Layouts: a diffusers `SD3Transformer2DModel` folder, an SD3 single file, or flowscale's plain
//! safetensors (every trained tensor, the conditioner included, under flowscale's names).

use crate::checkpoint::{CheckpointStore, LoadedCheckpoint};
use crate::config::RunConfig;
use crate::error::{Result, TrainError};
use crate::run_dir::write_atomic;
use crate::state::TrainState;
use crate::trainer::CONDITIONER_PREFIX;
use flowscale_models::checkpoint::{self as mck, Layout, StateDict};
use flowscale_models::MmditConfig;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Diffusers,
    Sd3,
    Safetensors,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WeightChoice {
    Raw,
    /// An EMA; `None` = the run's only EMA.
    Ema(Option<f64>),
}

impl std::str::FromStr for WeightChoice {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "raw" => Ok(Self::Raw),
            "ema" => Ok(Self::Ema(None)),
            _ => s
                .strip_prefix("ema:")
                .and_then(|d| d.parse::<f64>().ok())
                .map(|d| Self::Ema(Some(d)))
                .ok_or_else(|| format!("--weights must be raw, ema or ema:DECAY, got {s:?}")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StepChoice {
    Latest,
    Step(u64),
    BestValLoss,
}

#[derive(Debug, Clone)]
pub struct ExportRequest {
    pub source: PathBuf,
    pub format: ExportFormat,
    pub weights: WeightChoice,
    pub step: StepChoice,
    pub dtype: Kind,
    pub out: PathBuf,
}

/// Finds the checkpoint folder the request names.
pub fn resolve_checkpoint(source: &Path, step: StepChoice) -> Result<PathBuf> {
    if source.join(crate::checkpoint::STATE_FILE).is_file() {
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
    Ok(load_state_only(latest)?
        .state
        .best_val_loss
        .map(|(_, step)| step))
}

fn load_state_only(dir: &Path) -> Result<LoadedCheckpoint<TrainState>> {
    let text = std::fs::read_to_string(dir.join(crate::checkpoint::STATE_FILE))
        .map_err(|e| TrainError::Invalid(format!("{}: {e}", dir.display())))?;
    let state: TrainState = serde_json::from_str(&text)
        .map_err(|e| TrainError::Invalid(format!("{}/state.json: {e}", dir.display())))?;
    Ok(LoadedCheckpoint {
        dir: dir.to_path_buf(),
        step: state.step,
        groups: HashMap::new(),
        state,
    })
}

/// Runs an export; returns the checkpoint folder used.
/// What [`export`] wrote: the checkpoint folder it read and the weights, e.g. `ema:0.999`.
#[derive(Debug, Clone)]
pub struct ExportReport {
    pub checkpoint: PathBuf,
    pub weights: String,
}

pub fn export(req: &ExportRequest) -> Result<ExportReport> {
    let dir = resolve_checkpoint(&req.source, req.step)?;
    let ck: LoadedCheckpoint<TrainState> = CheckpointStore::load(&dir)?;
    let model = ck
        .groups
        .get("model")
        .ok_or_else(|| TrainError::Invalid(format!("{}: no model.safetensors", dir.display())))?;
    let emas: Vec<f64> = ck
        .groups
        .keys()
        .filter_map(|k| k.strip_prefix("ema-").and_then(|d| d.parse().ok()))
        .collect();
    let (label, chosen) = match &req.weights {
        WeightChoice::Raw => ("raw".to_owned(), model),
        WeightChoice::Ema(decay) => {
            let d = match (decay, emas.as_slice()) {
                (Some(d), _) => *d,
                (None, [only]) => *only,
                (None, _) => {
                    return Err(TrainError::Invalid(format!(
                        "{}: the run keeps EMAs {emas:?}; choose one with --weights ema:DECAY",
                        dir.display()
                    )))
                }
            };
            let group = ck.groups.get(&format!("ema-{d}")).ok_or_else(|| {
                TrainError::Invalid(format!(
                    "{}: no EMA with decay {d} (the run keeps {emas:?})",
                    dir.display()
                ))
            })?;
            (format!("ema:{d}"), group)
        }
    };
    // EMAs cover trained tensors only; fixed buffers (the position table) come from the model.
    let mut tensors: StateDict = StateDict::new();
    for (k, t) in model.iter().chain(chosen.iter()) {
        let t = if t.is_floating_point() {
            t.f_to_kind(req.dtype)?
        } else {
            t.shallow_clone()
        };
        tensors.insert(k.clone(), t);
    }
    let config_path = dir.join("config.json");
    let config_text = std::fs::read_to_string(&config_path)
        .map_err(|e| TrainError::Invalid(format!("{}: {e}", config_path.display())))?;
    let mcfg = MmditConfig::from_json(&config_text)
        .map_err(|e| TrainError::Invalid(format!("{}: {e}", config_path.display())))?;
    let backbone: StateDict = tensors
        .iter()
        .filter(|(k, _)| !k.starts_with(CONDITIONER_PREFIX))
        .map(|(k, t)| (k.clone(), t.shallow_clone()))
        .collect();
    let card_path = match req.format {
        ExportFormat::Diffusers => {
            mck::write(&req.out, &mcfg, &backbone, Layout::Diffusers)
                .map_err(|e| TrainError::Invalid(format!("export: {e}")))?;
            req.out.join("README.md")
        }
        ExportFormat::Sd3 => {
            mck::write(&req.out, &mcfg, &backbone, Layout::Sd3 { prefixed: true })
                .map_err(|e| TrainError::Invalid(format!("export: {e}")))?;
            req.out.with_extension("md")
        }
        ExportFormat::Safetensors => {
            let list: Vec<(String, Tensor)> = tensors.into_iter().collect();
            let tmp = req.out.with_extension("safetensors.tmp");
            Tensor::write_safetensors(&list, &tmp)
                .map_err(|e| TrainError::Invalid(format!("{}: {e}", tmp.display())))?;
            std::fs::rename(&tmp, &req.out)
                .map_err(|e| TrainError::Invalid(format!("{}: {e}", req.out.display())))?;
            req.out.with_extension("md")
        }
    };
    let card = model_card(&dir, &ck.state, &label, req)?;
    write_atomic(&card_path, card.as_bytes())?;
    Ok(ExportReport {
        checkpoint: dir,
        weights: label,
    })
}

/// A model card: what was trained, how, and how well.
fn model_card(dir: &Path, state: &TrainState, label: &str, req: &ExportRequest) -> Result<String> {
    let run_dir = dir.parent().and_then(Path::parent);
    let config_text = run_dir
        .map(|r| r.join("config.resolved.toml"))
        .and_then(|p| std::fs::read_to_string(p).ok());
    let formulation = config_text
        .as_deref()
        .and_then(|t| toml::from_str::<RunConfig>(t).ok())
        .map(|c| format!("{} (shift {})", c.formulation.name, c.formulation.shift))
        .unwrap_or_else(|| "unknown (no config.resolved.toml beside the checkpoints)".into());
    let val = match state.best_val_loss {
        Some((v, s)) => format!("{v:.6} at step {s} (mean over the 7 levels t < 1, EMA weights)"),
        None => "not evaluated".into(),
    };
    Ok(format!(
        "# flowscale MMDiT export\n\n\
         - source checkpoint: `{}`\n- weights: {label}\n- format: {:?}, dtype {:?}\n\
         - step: {}\n- images seen: {}\n- formulation: {formulation}\n\
         - best validation loss: {val}\n- training FLOPs: {:.3e}\n- flowscale {}\n\n\
         Load the diffusers folder with `SD3Transformer2DModel.from_pretrained(path)`. The network\n\
         takes the time input `1000 * t` (rectified-flow time of equal log-SNR).\n\n\
         ## Run config\n\n```toml\n{}```\n",
        dir.display(),
        req.format,
        req.dtype,
        state.step,
        state.images_seen,
        state.train_flops,
        state.flowscale_version,
        config_text.unwrap_or_default()
    ))
}
