//! `flowscale bench train-step CONFIG`: wall time of full optimiser steps, the number
//! `scripts/bench/train_step.py` compares with the same step in PyTorch eager + diffusers.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use flowscale_train::config::{load, RunConfig};
use flowscale_train::{TrainOptions, Trainer};

#[derive(Debug, Args)]
pub struct TrainStepArgs {
    /// Run config (TOML).
    config: PathBuf,
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Untimed steps first (allocator and kernel warm-up).
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Timed steps.
    #[arg(long, default_value_t = 20)]
    steps: u64,
    /// Print one JSON line instead of text.
    #[arg(long)]
    json: bool,
    /// Also write the backbone's diffusers `config.json` here (for the PyTorch peer).
    #[arg(long = "model-json")]
    model_json: Option<PathBuf>,
}

pub fn run(args: &TrainStepArgs) -> anyhow::Result<()> {
    let mut config: RunConfig = load(&args.config, &args.overrides)?;
    // A throw-away run directory: the benchmark never writes into real runs.
    let tmp = std::env::temp_dir().join(format!("flowscale-bench-{}", std::process::id()));
    config.run.out_dir = tmp.display().to_string();
    config.train.steps = args.warmup + args.steps;
    let mut trainer = Trainer::new(
        config.clone(),
        TrainOptions {
            quiet: true,
            ..Default::default()
        },
    )?;
    if let Some(path) = &args.model_json {
        std::fs::write(path, trainer.model().config().to_diffusers_json()?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    for _ in 0..args.warmup {
        trainer.step()?;
    }
    let start = std::time::Instant::now();
    for _ in 0..args.steps {
        trainer.step()?;
    }
    trainer.synchronize()?;
    let secs = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&tmp);
    let ms = 1e3 * secs / args.steps as f64;
    let batch = config.train.batch_size * config.train.grad_accum;
    if args.json {
        println!(
            "{{\"ms_per_step\": {ms:.3}, \"batch\": {batch}, \"steps\": {}, \"device\": \"{:?}\", \"threads\": {}}}",
            args.steps,
            trainer.device(),
            tch::get_num_threads()
        );
    } else {
        println!(
            "{ms:.1} ms/step, {:.1} images/s (batch {batch}, {} timed steps after {} warm-up, {:?}, {} threads)",
            1e3 * batch as f64 / ms,
            args.steps,
            args.warmup,
            trainer.device(),
            tch::get_num_threads()
        );
    }
    Ok(())
}
