//! `flowscale export`: one checkpoint's chosen weights in the layout another tool loads, with a
//! model card.
//!
//! Source: a checkpoint folder, or a run directory with `--step N`, `--best-val-loss` (the step
//! whose first-EMA validation loss was lowest, the paper's selection) or, by default, the newest
//! checkpoint. Weights: `raw`, or an EMA (`ema` when the run keeps one, `ema:0.999` to choose).
//! Layouts: a diffusers `SD3Transformer2DModel` folder, an SD3 single file (both MMDiT only),
//! flowscale's folder (the other backbones: `config.json` naming the backbone plus the weights),
//! or flowscale's plain safetensors (every trained tensor, the conditioner included, under
//! flowscale's names, the backbone config in the metadata).

use crate::config::RunConfig;
use crate::error::{Result, TrainError};
use crate::run::{RunCheckpoint, RunModel, RunModelSpec, CONDITIONER_PREFIX};
use crate::run_dir::{write_atomic, RunDir};
use flowscale_models::checkpoint::{self as mck, Layout, StateDict};
use std::path::PathBuf;
use tch::{Kind, Tensor};

pub use crate::run::{best_val_loss_step, resolve_checkpoint, StepChoice, WeightChoice};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Diffusers,
    Sd3,
    Safetensors,
    /// flowscale's folder for backbones other than MMDiT: `config.json` naming the backbone
    /// plus the weights (`flowscale_models::checkpoint::Layout::Flowscale`).
    Flowscale,
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

/// What [`export`] wrote: the checkpoint folder it read and the weights, e.g. `ema:0.999`.
#[derive(Debug, Clone)]
pub struct ExportReport {
    pub checkpoint: PathBuf,
    pub weights: String,
}

pub fn export(req: &ExportRequest) -> Result<ExportReport> {
    let ck = RunCheckpoint::open(&req.source, req.step)?;
    let set = ck.weight_set(&req.weights)?;
    let spec = RunModelSpec::for_checkpoint(&ck)?;
    // Exports (and `generate` from them) scale latents with the autoencoder's constants.
    if let Some(cfg) = ck
        .run_config()
        .ok()
        .filter(|c| c.data.latent_normalization == crate::config::LatentNormalization::Data)
    {
        return Err(TrainError::Invalid(format!(
            "{}: the run {} normalises latents by the data's statistics (data.latent_normalization \
             = \"data\"), but exported models are sampled with the autoencoder's scaling; export \
             runs trained with the default normalization",
            ck.dir().display(),
            cfg.run.name
        )));
    }
    // Every exported format (and `generate` from it) feeds the backbone SD3's `1000 t_eq`; a
    // backbone trained on another time input would be exported wrong without a word.
    if let Some(f) = spec
        .native_time
        .filter(|f| f.path() != flowscale_formulations::Path::Linear)
    {
        return Err(TrainError::Invalid(format!(
            "{}: the run trains {f} with formulation.time_input = \"native\", but exported \
             models take the common time input 1000 t_eq (SD3's); export runs trained with the \
             default time input",
            ck.dir().display()
        )));
    }
    // The model through the run layer: every tensor of the chosen set is checked by name,
    // shape and dtype against it.
    let model = RunModel::build(&spec, tch::Device::Cpu)?;
    ck.load_weights(&model, set)?;
    let mut tensors = StateDict::new();
    for (k, t) in model.named_tensors() {
        tensors.insert(k, t.f_detach()?.f_to_kind(req.dtype)?);
    }
    let mcfg = model.config();
    let backbone: StateDict = tensors
        .iter()
        .filter(|(k, _)| !k.starts_with(CONDITIONER_PREFIX))
        .map(|(k, t)| (k.clone(), t.shallow_clone()))
        .collect();
    let card_path = match req.format {
        ExportFormat::Diffusers => {
            mck::write(&req.out, mcfg, &backbone, Layout::Diffusers)?;
            req.out.join("README.md")
        }
        ExportFormat::Sd3 => {
            mck::write(&req.out, mcfg, &backbone, Layout::Sd3 { prefixed: true })?;
            req.out.with_extension("md")
        }
        ExportFormat::Flowscale => {
            mck::write(&req.out, mcfg, &backbone, Layout::Flowscale)?;
            req.out.join("README.md")
        }
        ExportFormat::Safetensors => {
            let mut list: Vec<(String, Tensor)> = tensors.into_iter().collect();
            list.sort_by(|a, b| a.0.cmp(&b.0));
            // The architecture (backbone included) rides in the metadata, as in flowscale's
            // SD3 files.
            let metadata = mck::config_metadata(mcfg)?;
            mck::safetensors_io::write(&req.out, &list, Some(metadata))?;
            req.out.with_extension("md")
        }
    };
    let label = set.label();
    let card = model_card(&ck, &label, req, mcfg.backbone)?;
    write_atomic(&card_path, card.as_bytes())?;
    Ok(ExportReport {
        checkpoint: ck.checkpoint.dir,
        weights: label,
    })
}

/// A model card: what was trained, how, and how well.
fn model_card(
    ck: &RunCheckpoint,
    label: &str,
    req: &ExportRequest,
    backbone: flowscale_models::BackboneKind,
) -> Result<String> {
    let loading = match req.format {
        ExportFormat::Diffusers => {
            "Load the diffusers folder with \
            `SD3Transformer2DModel.from_pretrained(path)`."
        }
        ExportFormat::Sd3 => "Load the file with SD3 single-file tools.",
        ExportFormat::Flowscale => {
            "Load the folder with `flowscale generate --from-export` \
            (config.json names the backbone; docs/backbones.md gives its layout)."
        }
        ExportFormat::Safetensors => {
            "flowscale's names; the backbone config is in the \
            safetensors metadata."
        }
    };
    let (dir, state) = (ck.dir(), &ck.checkpoint.state);
    let config_text = ck
        .run_dir
        .as_ref()
        .map(|r| RunDir::new(r).config())
        .and_then(|p| std::fs::read_to_string(p).ok());
    let formulation = config_text
        .as_deref()
        .and_then(|t| toml::from_str::<RunConfig>(t).ok())
        .and_then(|c| {
            let alpha = c.shift_alpha().ok()?;
            Some(format!("{} (shift {alpha})", c.formulation.name))
        })
        .unwrap_or_else(|| "unknown (no config.resolved.toml beside the checkpoints)".into());
    let val = match state.best_val_loss {
        Some((v, s)) => format!("{v:.6} at step {s} (mean over the 7 levels t < 1, EMA weights)"),
        None => "not evaluated".into(),
    };
    Ok(format!(
        "# flowscale {backbone} export\n\n\
         - source checkpoint: `{}`\n- weights: {label}\n- format: {:?}, dtype {:?}\n\
         - step: {}\n- images seen: {}\n- formulation: {formulation}\n\
         - best validation loss: {val}\n- training FLOPs: {:.3e}\n- flowscale {}\n\n\
         {loading} The network\n\
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
