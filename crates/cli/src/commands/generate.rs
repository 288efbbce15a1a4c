//! `flowscale generate RUN [--prompt TEXT]... [--prompts FILE] [--class NAME|INDEX]... --out DIR
//! [sampler and weight options]`: images from a trained run, one row per prompt or class
//! (crates/train/src/generation). `flowscale generate --checkpoint EXPORT --text-config T
//! --autoencoder KIND[:PATH] [--formulation F] --prompt ...`: the same from an exported backbone
//! (prompts only; it carries no class embedding). Writes `DIR/<index:04>.png` per image, `DIR/grid.png` (rows =
//! prompts, columns = images per prompt), `DIR/prompts.txt` (line i = row i) and
//! `DIR/generate.json` (everything that decided the images), each atomically.

use anyhow::Context;
use clap::{Args, ValueEnum};
use flowscale_formulations::{SamplerFrame, SamplerMethod};
use flowscale_train::config::DeviceChoice;
use flowscale_train::generation::{
    parse_autoencoder, row_inputs, FromExport, FromRun, Generator, Origin, RowInputs, RowRequest,
    SampleRequest, DEFAULT_FORMULATION,
};
use flowscale_train::image_grid::save_grid;
use flowscale_train::run::{StepChoice, WeightChoice};
use flowscale_train::sampling::SamplerSetting;
use serde_json::json;
use std::path::{Path, PathBuf};
use tch::Tensor;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DeviceArg {
    /// The first CUDA device when there is one, else the CPU.
    Auto,
    Cpu,
    Cuda,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// A run directory or one of its checkpoint folders (checkpoints/step-NNNNNNNNN).
    #[arg(required_unless_present = "checkpoint")]
    run: Option<PathBuf>,
    /// Generate from an exported backbone instead of a run: a diffusers folder, an SD3 single
    /// .safetensors file, or a flowscale folder of another backbone (`flowscale export`). Needs
    /// --text-config and --autoencoder; prompts only.
    #[arg(long, value_name = "PATH", conflicts_with = "run")]
    checkpoint: Option<PathBuf>,
    // The options below that only an export takes conflict with RUN rather than require
    // --checkpoint: clap drops a requirement on an argument that conflicts with one given.
    /// With --checkpoint: what decodes its samples: identity (pixel space), kl:DIR (a diffusers
    /// AutoencoderKL folder) or taef2:DIR, the kinds of a precompute config's [autoencoder].
    #[arg(long, value_name = "KIND[:PATH]", conflicts_with = "run")]
    autoencoder: Option<String>,
    /// With --checkpoint: the formulation it was trained with (its model card's); its path and
    /// parameterisation decide the sampler.
    #[arg(long, value_name = "NAME", conflicts_with = "run", default_value = DEFAULT_FORMULATION)]
    formulation: String,
    /// With --checkpoint: latent height and width (default: the backbone's sample_size, the
    /// training grid in flowscale's exports).
    #[arg(long, num_args = 2, value_names = ["H", "W"], conflicts_with = "run")]
    latent_size: Option<Vec<i64>>,
    /// A prompt (text runs; repeatable). "" is the unconditional sample (all-zero conditioning).
    #[arg(long, value_name = "TEXT")]
    prompt: Vec<String>,
    /// A file of prompts, one per line (blank lines skipped), after any --prompt.
    #[arg(long, value_name = "FILE")]
    prompts: Option<PathBuf>,
    /// A class name (any case) or index (class runs; repeatable).
    #[arg(long, value_name = "NAME|INDEX")]
    class: Vec<String>,
    /// Output folder (created).
    #[arg(long)]
    out: PathBuf,
    /// Euler steps.
    #[arg(long, default_value_t = 28)]
    steps: usize,
    /// Classifier-free guidance scale (1 = no guidance).
    #[arg(long, default_value_t = 5.0)]
    cfg: f64,
    /// Schedule shift (default: the run's samples.shift, else its formulation.shift; with
    /// --checkpoint 1.0, the default run's).
    #[arg(long)]
    shift: Option<f64>,
    /// Sampler frame: rf (every formulation on the RF path on SD3's sigmas, the paper's
    /// protocol) or native (the formulation's own ODE and schedule; docs/protocol.md section 7).
    #[arg(long, default_value = "rf", value_parser = parse_frame)]
    frame: SamplerFrame,
    /// Seed of the initial noise: the same seed gives the same images.
    #[arg(long, default_value_t = 0)]
    seed: i64,
    /// raw, ema (the run's only EMA), ema:DECAY, phema (the checkpoint's only power-function
    /// EMA, as in a reconstructed checkpoint) or phema:STD.
    #[arg(long, default_value = "ema", conflicts_with = "checkpoint")]
    weights: WeightChoice,
    /// Generate from the checkpoint of this step (default: the newest).
    #[arg(long, conflicts_with_all = ["best_val_loss", "checkpoint"])]
    step: Option<u64>,
    /// Generate from the checkpoint with the lowest EMA validation loss.
    #[arg(long, conflicts_with = "checkpoint")]
    best_val_loss: bool,
    /// Guidance steers away from this prompt instead of from the all-zero conditioning.
    #[arg(long, value_name = "TEXT")]
    negative_prompt: Option<String>,
    /// Leave a conditioning source out (zeros), e.g. t5 as the paper does (repeatable).
    #[arg(long = "drop-source", value_name = "NAME")]
    drop_source: Vec<String>,
    /// Text-encoder config for prompts (default: the run's conditioning.text_encoder; needed
    /// for runs trained on stored embeddings without one, and with --checkpoint, whose context
    /// and pooled widths it must give).
    #[arg(long, value_name = "PATH")]
    text_config: Option<PathBuf>,
    /// Images per prompt (columns of the grid).
    #[arg(long, default_value_t = 1)]
    per_prompt: usize,
    #[arg(long, value_enum, default_value = "auto")]
    device: DeviceArg,
    /// Images sampled at once.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
}

/// `--frame`: the names of [`SamplerFrame`]; anything else is refused listing them.
fn parse_frame(name: &str) -> Result<SamplerFrame, String> {
    SamplerFrame::parse(name).map_err(|e| e.to_string())
}

impl GenerateArgs {
    /// The rows asked for: prompts (--prompt, then --prompts FILE) or classes, not both.
    fn rows(&self) -> anyhow::Result<RowRequest> {
        let mut prompts = self.prompt.clone();
        if let Some(file) = &self.prompts {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading prompts from {}", file.display()))?;
            prompts.extend(
                text.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(str::to_owned),
            );
        }
        match (prompts.is_empty(), self.class.is_empty()) {
            (false, false) => anyhow::bail!("give prompts or classes, not both"),
            (true, false) => Ok(RowRequest::Classes(self.class.clone())),
            _ => Ok(RowRequest::Prompts(prompts)),
        }
    }

    fn device(&self) -> anyhow::Result<tch::Device> {
        let choice = match self.device {
            DeviceArg::Auto => DeviceChoice::Auto,
            DeviceArg::Cpu => DeviceChoice::Cpu,
            DeviceArg::Cuda => DeviceChoice::Cuda,
        };
        let cuda = tch::Cuda::device_count().max(0) as usize;
        Ok(flowscale_train::distributed::rank_device(
            choice, None, cuda,
        )?)
    }
}

/// The generator of a run, or of an exported backbone with its configs.
fn open(args: &GenerateArgs) -> anyhow::Result<Generator> {
    let text_config = args.text_config.as_ref().map(|p| p.display().to_string());
    let device = args.device()?;
    let Some(checkpoint) = &args.checkpoint else {
        let run = args
            .run
            .as_ref()
            .context("give a run directory or --checkpoint")?;
        return Ok(Generator::from_run(&FromRun {
            source: run,
            step: match (args.step, args.best_val_loss) {
                (Some(n), _) => StepChoice::Step(n),
                (None, true) => StepChoice::BestValLoss,
                (None, false) => StepChoice::Latest,
            },
            weights: args.weights.clone(),
            text_config: text_config.as_deref(),
            device,
        })?);
    };
    if !args.class.is_empty() {
        anyhow::bail!(
            "--class with --checkpoint: an exported backbone carries no class embedding; \
             generate classes from the run directory (flowscale generate RUN --class ...)"
        );
    }
    let text_config = text_config.with_context(|| {
        format!(
            "--checkpoint {} needs --text-config PATH: the text-encoder config its prompts were \
             trained with (an export names none)",
            checkpoint.display()
        )
    })?;
    let autoencoder = args.autoencoder.as_deref().with_context(|| {
        format!(
            "--checkpoint {} needs --autoencoder: identity for a pixel-space model, else \
             kl:DIR or taef2:DIR (what its training latents were encoded with)",
            checkpoint.display()
        )
    })?;
    Ok(Generator::from_export(&FromExport {
        checkpoint,
        text_config: &text_config,
        autoencoder: parse_autoencoder(autoencoder)?,
        formulation: &args.formulation,
        latent_size: args.latent_size.as_deref().map(|s| [s[0], s[1]]),
        device,
    })?)
}

pub fn run(args: &GenerateArgs) -> anyhow::Result<()> {
    let rows_wanted = args.rows()?;
    let generator = open(args)?;
    let rows = row_inputs(
        &generator,
        &rows_wanted,
        args.negative_prompt.as_deref(),
        &mut |line| eprintln!("warning: {line}"),
    )?;
    let setting = SamplerSetting {
        steps: args.steps,
        cfg: args.cfg,
        shift: args.shift.unwrap_or(generator.default_shift),
        method: SamplerMethod::Euler,
        frame: args.frame,
    };
    let images = generator.sample(
        &rows,
        &SampleRequest {
            setting,
            seed: args.seed,
            per_row: args.per_prompt,
            batch_size: args.batch_size,
            drop_sources: &args.drop_source,
        },
    )?;
    write_outputs(args, &generator, &rows, setting, &images)?;
    eprintln!(
        "wrote {} images of {} rows from {} to {}",
        images.size()[0],
        rows.len(),
        generator.origin.describe(),
        args.out.display()
    );
    Ok(())
}

/// What `generate.json` records of where the weights came from.
fn origin_record(origin: &Origin) -> serde_json::Value {
    match origin {
        Origin::Run {
            run_dir,
            checkpoint,
            step,
            weights,
        } => json!({
            "run": run_dir.display().to_string(),
            "checkpoint": checkpoint.display().to_string(),
            "step": step,
            "weights": weights.label(),
        }),
        Origin::Export {
            checkpoint,
            layout,
            autoencoder,
        } => json!({
            "checkpoint": checkpoint.display().to_string(),
            "layout": flowscale_train::generation::origin::layout_name(*layout),
            "autoencoder": autoencoder.kind_name(),
            "autoencoder_path": autoencoder.path().map(|p| p.display().to_string()),
        }),
    }
}

/// The images, the grid, the row file and the record of the request.
fn write_outputs(
    args: &GenerateArgs,
    g: &Generator,
    rows: &RowInputs,
    setting: SamplerSetting,
    images: &Tensor,
) -> anyhow::Result<()> {
    let out: &Path = &args.out;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let u8s = flowscale_data::to_u8_pixels(images)?;
    for i in 0..u8s.size()[0] {
        flowscale_eval::image_io::write_png(&out.join(format!("{i:04}.png")), &u8s.get(i))?;
    }
    save_grid(images, args.per_prompt as i64, &out.join("grid.png"))?;
    // One line per row: a prompt written over several lines would shift every later row.
    let lines: Vec<String> = rows.labels.iter().map(|l| l.replace('\n', " ")).collect();
    flowscale_core::write_atomic(
        &out.join("prompts.txt"),
        format!("{}\n", lines.join("\n")).as_bytes(),
    )?;
    let mut record = origin_record(&g.origin);
    let shared = json!({
        "formulation": g.formulation_name,
        "latent_size": [g.model_shape[1], g.model_shape[2]],
        "seed": args.seed,
        "sampler": "euler",
        "frame": setting.frame.name(),
        "steps": setting.steps,
        "cfg": setting.cfg,
        "shift": setting.shift,
        "drop_sources": args.drop_source,
        "negative_prompt": args.negative_prompt,
        "text_config": g.text_config,
        "per_prompt": args.per_prompt,
        "rows": rows.labels,
    });
    if let (serde_json::Value::Object(r), serde_json::Value::Object(s)) = (&mut record, shared) {
        r.extend(s);
    }
    flowscale_core::write_atomic(
        &out.join("generate.json"),
        format!("{}\n", serde_json::to_string_pretty(&record)?).as_bytes(),
    )?;
    Ok(())
}
