//! A generator opened from an exported backbone (`flowscale export`'s diffusers folder or SD3
//! single file) with what the export does not carry: the text encoder its prompts go through,
//! the autoencoder that decodes its latents and the formulation it was trained with. The text
//! encoder's shapes and the autoencoder's channels are checked against the backbone, since a
//! mismatch would otherwise surface as a shape error deep inside the forward pass.

use super::data::GenerationData;
use super::generator::Generator;
use super::origin::Origin;
use crate::error::{Result, TrainError};
use crate::run::{PixelDecoder, RunModel};
use crate::sample_text::SampleText;
use flowscale_encoders::autoencoders::AutoencoderSpec;
use flowscale_encoders::text::TextEncoder;
use flowscale_formulations::Formulation;
use flowscale_models::checkpoint::load_mmdit;
use flowscale_models::MmditConfig;
use std::path::Path;
use tch::Device;

/// The formulation of flowscale's default run config; an export's model card names its own.
pub const DEFAULT_FORMULATION: &str = "rf/lognorm(0.00, 1.00)";
/// The schedule shift without `--shift`: the default run's `formulation.shift` (none).
pub const DEFAULT_SHIFT: f64 = 1.0;

/// An exported backbone and the configs it is sampled with.
#[derive(Debug, Clone)]
pub struct FromExport<'a> {
    /// A diffusers folder or an SD3 single `.safetensors` file.
    pub checkpoint: &'a Path,
    /// Text-encoder config for prompts: an export names none.
    pub text_config: &'a str,
    pub autoencoder: AutoencoderSpec,
    /// The formulation name; its path and parameterisation decide the sampler.
    pub formulation: &'a str,
    /// Latent height and width; default: the backbone's `sample_size` (the training grid in
    /// flowscale's exports).
    pub latent_size: Option<[i64; 2]>,
    pub device: Device,
}

/// `--autoencoder` as written on the command line: `identity`, or `KIND:PATH` with a kind and
/// weights folder as `[autoencoder]` of a precompute config takes them (`kl:DIR`, `taef2:DIR`).
pub fn parse_autoencoder(arg: &str) -> Result<AutoencoderSpec> {
    let (kind, path) = match arg.split_once(':') {
        Some((kind, path)) => (kind, Some(path.into())),
        None => (arg, None),
    };
    AutoencoderSpec::new(kind, path)
        .map_err(|(_, reason)| TrainError::Invalid(format!("--autoencoder {arg}: {reason}")))
}

impl Generator {
    /// Loads the backbone of `req.checkpoint` with the text encoder and autoencoder given.
    pub fn from_export(req: &FromExport) -> Result<Self> {
        let formulation = Formulation::parse(req.formulation).map_err(|e| {
            TrainError::Invalid(format!("--formulation {:?}: {e}", req.formulation))
        })?;
        let where_ = req.checkpoint.display();
        let loaded = load_mmdit(req.checkpoint, req.device)
            .map_err(|e| TrainError::Invalid(format!("{where_}: {e}")))?;
        let config = loaded.model.config().clone();
        let encoder = TextEncoder::load_file(Path::new(req.text_config), req.device)
            .map_err(|e| TrainError::Invalid(format!("--text-config {}: {e}", req.text_config)))?;
        check_text(&config, encoder.shapes(), req)?;
        let decoder = PixelDecoder::for_spec(&req.autoencoder, req.device)?;
        check_channels(&config, decoder.latent_channels(), req)?;
        let [h, w] = latent_size(&config, req.latent_size)?;
        let (tokens, _, _) = encoder.shapes();
        let conditioner = SampleText::for_encoder(encoder, req.device)?;
        let layout = loaded.layout;
        Ok(Self {
            model: RunModel::from_backbone(loaded, Box::new(conditioner), tokens, req.device),
            data: GenerationData::Exported(decoder),
            model_shape: [config.in_channels, h, w],
            formulation,
            formulation_name: req.formulation.to_owned(),
            default_shift: DEFAULT_SHIFT,
            text_config: Some(req.text_config.to_owned()),
            origin: Origin::Export {
                checkpoint: req.checkpoint.to_path_buf(),
                layout,
                autoencoder: req.autoencoder.clone(),
            },
            device: req.device,
        })
    }
}

/// The text encoder's context width and pooled width must be what the backbone attends to.
fn check_text(config: &MmditConfig, shapes: (i64, i64, i64), req: &FromExport) -> Result<()> {
    let (_, width, pooled) = shapes;
    if (width, pooled) == (config.joint_attention_dim, config.pooled_projection_dim) {
        return Ok(());
    }
    Err(TrainError::Invalid(format!(
        "--text-config {}: its encoder gives context tokens of width {width} and a pooled vector \
         of {pooled}, the backbone of {} takes joint_attention_dim {} and pooled_projection_dim \
         {}; give the text config it was trained with",
        req.text_config,
        req.checkpoint.display(),
        config.joint_attention_dim,
        config.pooled_projection_dim
    )))
}

/// The sampler integrates the backbone's output as a velocity (or noise) of its input's shape,
/// which the autoencoder must decode: `latent` channels, or for pixel space (`None`) 1 or 3.
fn check_channels(config: &MmditConfig, latent: Option<i64>, req: &FromExport) -> Result<()> {
    let (inputs, outputs) = (config.in_channels, config.out_channels());
    let problem = if inputs != outputs {
        format!("takes {inputs} channels and predicts {outputs}: it cannot be sampled")
    } else {
        match latent {
            Some(c) if c != inputs => format!(
                "generates {inputs} channels, the {} autoencoder decodes {c}",
                req.autoencoder.kind_name()
            ),
            None if inputs != 1 && inputs != 3 => format!(
                "generates {inputs} channels, pixel images (--autoencoder identity) have 1 or 3; \
                 give the autoencoder its latents came from (kl:DIR or taef2:DIR)"
            ),
            _ => return Ok(()),
        }
    };
    Err(TrainError::Invalid(format!(
        "the backbone of {} {problem}",
        req.checkpoint.display()
    )))
}

/// `wanted`, else `sample_size` a side; each side a multiple of the patch size that the
/// position table covers (checked before the noise is drawn: a huge size would fail there).
fn latent_size(config: &MmditConfig, wanted: Option<[i64; 2]>) -> Result<[i64; 2]> {
    let size = wanted.unwrap_or([config.sample_size; 2]);
    let p = config.patch_size.max(1);
    let max = config.pos_max() * p;
    if size.iter().any(|&s| s < p || s > max || s % p != 0) {
        return Err(TrainError::Invalid(format!(
            "latent size {size:?}: this backbone takes multiples of its patch size {p} up to \
             {max} a side (pos_embed_max_size {} x patch_size {p})",
            config.pos_max()
        )));
    }
    Ok(size)
}
