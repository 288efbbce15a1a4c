//! The opened generator (model, conditioner, decoder, formulation) and seeded sampling with it.
//! Sampling draws its noise from a seed alone, on the CPU, so the same request gives the same
//! images on any device and whatever else the process draws, and from either source.

use super::data::GenerationData;
use super::origin::Origin;
use super::rows::{is_blank, RowInputs};
use crate::cond_input::{CondInput, TextBatch};
use crate::conditioning::Conditioning;
use crate::error::{Result, TrainError};
use crate::run::RunModel;
use crate::sampling::{generate, generate_guided, SamplerSetting};
use flowscale_formulations::Formulation;
use tch::{Device, Kind, Tensor};

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

/// A model with its conditioner, what turns its samples into pixels and the formulation it
/// samples with: what both sources (a run, or an exported backbone with its text and
/// autoencoder configs) open into, so that sampling and writing are one code path.
pub struct Generator {
    pub model: RunModel,
    pub data: GenerationData,
    /// `[C, H, W]` of what the model generates.
    pub model_shape: [i64; 3],
    pub formulation: Formulation,
    /// The formulation as configured (the run's `formulation.name`, or as given).
    pub formulation_name: String,
    /// The schedule shift used when none is asked for.
    pub default_shift: f64,
    /// The text-encoder config prompts are encoded with (text models).
    pub text_config: Option<String>,
    pub origin: Origin,
    pub device: Device,
}

impl Generator {
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
        let [c, h, w] = self.model_shape;
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
            // Latent models decode through their autoencoder.
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
