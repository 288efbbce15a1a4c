//! A run opened for generation: its checkpoint at a step choice with a weight choice, its data
//! (for the decoder and what it conditions on) and its model built by the run layer, with a text
//! encoder for prompts when the run conditions on text. Sampling draws its noise from a seed
//! alone, on the CPU, so the same request gives the same images on any device and whatever else
//! the process draws.

use super::rows::{is_blank, RowInputs};
use crate::cond_input::{CondInput, TextBatch};
use crate::conditioning::Conditioning;
use crate::config::RunConfig;
use crate::error::{Result, TrainError};
use crate::run::{
    CondSource, RunCheckpoint, RunData, RunModel, RunModelSpec, StepChoice, WeightChoice, WeightSet,
};
use crate::sampling::{generate, generate_guided, SamplerSetting};
use flowscale_formulations::Formulation;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// Which run, checkpoint and weights to generate from.
#[derive(Debug, Clone)]
pub struct GeneratorRequest<'a> {
    /// A run directory or one of its checkpoint folders.
    pub source: &'a Path,
    pub step: StepChoice,
    pub weights: WeightChoice,
    /// Text-encoder config for prompts; default: the run's `conditioning.text_encoder`.
    pub text_config: Option<&'a str>,
    pub device: Device,
}

/// How to sample the rows.
#[derive(Debug, Clone)]
pub struct SampleRequest<'a> {
    pub setting: SamplerSetting,
    /// The noise of image `i` is row `i` of one normal draw seeded by this.
    pub seed: i64,
    /// Images per row.
    pub per_row: usize,
    /// Images sampled at once.
    pub batch_size: usize,
    /// Conditioning sources left out (zeros) of every input, the negative prompt's included.
    pub drop_sources: &'a [String],
}

pub struct Generator {
    pub run_dir: PathBuf,
    /// `<run>/checkpoints/step-N/`.
    pub checkpoint: PathBuf,
    pub step: u64,
    pub weights: WeightSet,
    pub cfg: RunConfig,
    pub formulation: Formulation,
    pub data: RunData,
    pub model: RunModel,
    /// The text-encoder config prompts are encoded with (text runs).
    pub text_config: Option<String>,
    pub device: Device,
}

impl Generator {
    /// Opens the run `req` names and loads the chosen weights into its model.
    pub fn open(req: &GeneratorRequest) -> Result<Self> {
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
        let spec = RunModelSpec::for_run(&cfg, &data);
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
            run_dir,
            checkpoint: ck.dir().to_path_buf(),
            step: ck.checkpoint.step,
            weights,
            cfg,
            formulation,
            data,
            model,
            text_config,
            device: req.device,
        })
    }

    /// The schedule shift the run's sample grids used: `samples.shift`, else the formulation's.
    pub fn default_shift(&self) -> f64 {
        self.cfg.samples.shift.unwrap_or(self.cfg.formulation.shift)
    }

    /// `per_row` images of every row, row-major (`[rows * per_row, C, H, W]`), as pixels in
    /// [-1, 1] on the CPU.
    pub fn sample(&self, rows: &RowInputs, s: &SampleRequest) -> Result<Tensor> {
        if s.per_row == 0 || s.batch_size == 0 {
            return Err(TrainError::Invalid(format!(
                "images per prompt ({}) and batch size ({}) must be at least 1",
                s.per_row, s.batch_size
            )));
        }
        self.check_sources(s.drop_sources)?;
        let n = rows.len() * s.per_row;
        let [c, h, w] = self.data.model_shape();
        let noise = flowscale_core::with_torch_seed(s.seed, || {
            Tensor::f_randn([n as i64, c, h, w], (Kind::Float, Device::Cpu))
        })?;
        // Encoded once: the same for every image.
        let negative = rows
            .negative
            .as_ref()
            .map(|p| {
                let input = CondInput::Text(TextBatch {
                    captions: Some(vec![p.clone()]),
                    embedding: None,
                });
                self.encode(&input, &[is_blank(p)], s.drop_sources)
            })
            .transpose()?;
        let row_of: Vec<i64> = (0..n).map(|i| (i / s.per_row) as i64).collect();
        let backbone = |x: &Tensor, t: &Tensor, c: &Conditioning| self.model.forward(x, t, c);
        let mut out = Vec::new();
        for (b, batch_rows) in row_of.chunks(s.batch_size).enumerate() {
            let len = batch_rows.len() as i64;
            let blank: Vec<bool> = batch_rows.iter().map(|&r| rows.blank[r as usize]).collect();
            let cond = self.encode(&rows.input.select(batch_rows)?, &blank, s.drop_sources)?;
            let z = noise
                .f_narrow(0, (b * s.batch_size) as i64, len)?
                .f_to_device(self.device)?;
            let x = match &negative {
                None => generate(self.formulation, s.setting, &z, &cond, backbone)?,
                Some(u) => {
                    let uncond = Conditioning {
                        context: u.context.f_repeat([len, 1, 1])?,
                        pooled: u.pooled.f_repeat([len, 1])?,
                    };
                    generate_guided(self.formulation, s.setting, &z, &cond, &uncond, backbone)?
                }
            };
            // Latent runs decode through the run's autoencoder.
            out.push(self.data.to_pixels(&x)?);
        }
        Ok(Tensor::f_cat(&out, 0)?)
    }

    /// Conditioning of `input` with the sources `dropped` zero for every sample and every
    /// source zero for the `blank` samples (training's dropout, so the model knows both).
    fn encode(
        &self,
        input: &CondInput,
        blank: &[bool],
        dropped: &[String],
    ) -> Result<Conditioning> {
        let keep = self
            .model
            .conditioning_sources()
            .iter()
            .map(|name| {
                let mask: Vec<f32> = blank
                    .iter()
                    .map(|&b| {
                        if b || dropped.contains(name) {
                            0.0
                        } else {
                            1.0
                        }
                    })
                    .collect();
                Ok(Tensor::f_from_slice(&mask)?.f_to_device(self.device)?)
            })
            .collect::<Result<Vec<_>>>()?;
        self.model.encode(&input.to_device(self.device)?, &keep)
    }

    /// Every dropped source must be one of the model's.
    fn check_sources(&self, dropped: &[String]) -> Result<()> {
        let names = self.model.conditioning_sources();
        match dropped.iter().find(|d| !names.contains(d)) {
            Some(unknown) => Err(TrainError::Invalid(format!(
                "no conditioning source {unknown:?} to drop; this model has {names:?}"
            ))),
            None => Ok(()),
        }
    }
}
