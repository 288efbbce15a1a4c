//! A generator opened from a run: its checkpoint at a step choice with a weight choice, its data
//! (for the decoder and what it conditions on) and its model built by the run layer, with a text
//! encoder for prompts when the run conditions on text.

use super::data::GenerationData;
use super::generator::Generator;
use super::origin::Origin;
use crate::error::{Result, TrainError};
use crate::run::{
    CondSource, RunCheckpoint, RunData, RunModel, RunModelSpec, StepChoice, WeightChoice,
};
use flowscale_formulations::Formulation;
use std::path::Path;
use tch::Device;

/// Which run, checkpoint and weights to generate from.
#[derive(Debug, Clone)]
pub struct FromRun<'a> {
    /// A run directory or one of its checkpoint folders.
    pub source: &'a Path,
    pub step: StepChoice,
    pub weights: WeightChoice,
    /// Text-encoder config for prompts; default: the run's `conditioning.text_encoder`.
    pub text_config: Option<&'a str>,
    pub device: Device,
}

impl Generator {
    /// Opens the run `req` names and loads the chosen weights into its model.
    pub fn from_run(req: &FromRun) -> Result<Self> {
        let ck = RunCheckpoint::open(req.source, req.step)?;
        let cfg = ck.run_config()?;
        let run_dir = ck.run_dir.clone().ok_or_else(|| {
            TrainError::Invalid(format!(
                "{}: not inside <run>/checkpoints/",
                ck.dir().display()
            ))
        })?;
        let formulation = Formulation::parse(&cfg.formulation.name).map_err(|e| {
            TrainError::Invalid(format!(
                "{}: formulation.name: {e}",
                run_dir.join("config.resolved.toml").display()
            ))
        })?;
        let data = RunData::open(&cfg.data, &cfg.conditioning, req.device, true)?;
        let spec = RunModelSpec::for_run(&cfg, &data)?;
        let (spec, text_config) = match data.cond_source() {
            CondSource::Text(_) => {
                let path = match (req.text_config, &cfg.conditioning.text_encoder) {
                    (Some(p), _) => p.to_owned(),
                    (None, Some(p)) => p.clone(),
                    (None, None) => {
                        return Err(TrainError::Invalid(format!(
                            "{}: the run trained on stored text embeddings and names no \
                             conditioning.text_encoder, so nothing can encode prompts; give \
                             --text-config PATH (a text-encoder config like the one the shards \
                             were embedded with)",
                            run_dir.display()
                        )))
                    }
                };
                (spec.with_text_encoder(&path)?, Some(path))
            }
            CondSource::Labels => {
                if let Some(p) = req.text_config {
                    return Err(TrainError::Invalid(format!(
                        "--text-config {p}: {} conditions on class labels and encodes no prompts",
                        run_dir.display()
                    )));
                }
                (spec, None)
            }
        };
        let model = RunModel::build(&spec, req.device)?;
        let weights = ck.weight_set(&req.weights)?;
        ck.load_weights(&model, weights)?;
        Ok(Self {
            model,
            model_shape: data.model_shape(),
            data: GenerationData::Run(data),
            formulation,
            formulation_name: cfg.formulation.name.clone(),
            // What the run's sample grids used: samples.shift, else the formulation's.
            default_shift: match cfg.samples.shift {
                Some(s) => s,
                None => cfg.shift_alpha()?,
            },
            text_config,
            origin: Origin::Run {
                run_dir,
                checkpoint: ck.dir().to_path_buf(),
                step: ck.checkpoint.step,
                weights,
            },
            device: req.device,
        })
    }
}
