//! `flowscale export RUN_DIR|CHECKPOINT --format F --weights W [--step N | --best-val-loss]
//! [--dtype D] --out PATH`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use flowscale_train::export::{export, ExportFormat, ExportRequest, StepChoice, WeightChoice};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// A diffusers SD3Transformer2DModel folder (config.json + safetensors).
    Diffusers,
    /// An SD3 single file (model.diffusion_model.* keys).
    Sd3,
    /// flowscale's names in one safetensors file, the class/text conditioner included, the
    /// backbone config in the metadata.
    Safetensors,
    /// flowscale's folder for backbones other than MMDiT (DiT, CrossDiT, UViT, MMDiT-3):
    /// config.json naming the backbone + safetensors.
    Flowscale,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Dtype {
    Fp32,
    Bf16,
    Fp16,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A run directory or one checkpoint folder (checkpoints/step-NNNNNNNNN).
    source: PathBuf,
    #[arg(long, value_enum)]
    format: Format,
    /// raw, ema (the run's only EMA), ema:DECAY, phema (the checkpoint's only power-function
    /// EMA, as in a reconstructed checkpoint) or phema:STD.
    #[arg(long, default_value = "ema")]
    weights: WeightChoice,
    /// Export the checkpoint of this step (default: the newest).
    #[arg(long, conflicts_with = "best_val_loss")]
    step: Option<u64>,
    /// Export the checkpoint with the lowest EMA validation loss.
    #[arg(long)]
    best_val_loss: bool,
    #[arg(long, value_enum, default_value = "fp32")]
    dtype: Dtype,
    /// Output folder (diffusers) or file.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: &ExportArgs) -> anyhow::Result<()> {
    let req = ExportRequest {
        source: args.source.clone(),
        format: match args.format {
            Format::Diffusers => ExportFormat::Diffusers,
            Format::Sd3 => ExportFormat::Sd3,
            Format::Safetensors => ExportFormat::Safetensors,
            Format::Flowscale => ExportFormat::Flowscale,
        },
        weights: args.weights.clone(),
        step: match (args.step, args.best_val_loss) {
            (Some(n), _) => StepChoice::Step(n),
            (None, true) => StepChoice::BestValLoss,
            (None, false) => StepChoice::Latest,
        },
        dtype: match args.dtype {
            Dtype::Fp32 => tch::Kind::Float,
            Dtype::Bf16 => tch::Kind::BFloat16,
            Dtype::Fp16 => tch::Kind::Half,
        },
        out: args.out.clone(),
    };
    let report = export(&req)?;
    eprintln!(
        "exported {} weights of {} to {}",
        report.weights,
        report.checkpoint.display(),
        args.out.display()
    );
    Ok(())
}
