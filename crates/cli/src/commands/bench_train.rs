//! `flowscale bench train-step CONFIG`: wall time of full optimiser steps, the number
//! `scripts/bench/train_step.py` compares with the same step in PyTorch eager + diffusers.
//! `--process-group gloo|nccl` runs the same step inside a world-size-1 process group (loopback
//! store), so the gradient all-reduce and its buckets are timed against `none`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use flowscale_train::config::{load, DistBackend, RunConfig};
use flowscale_train::{TrainOptions, Trainer};

/// `--process-group`: none, or the backend of a world-size-1 group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProcessGroupArg {
    /// No process group: the single-process step.
    None,
    /// Gloo (CPU devices).
    Gloo,
    /// NCCL (CUDA devices).
    Nccl,
}

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
    /// Run the step inside a world-size-1 process group of this backend (the data-parallel
    /// gradient all-reduce with no peer), or none.
    #[arg(long = "process-group", value_enum, default_value = "none")]
    process_group: ProcessGroupArg,
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
    let options = TrainOptions {
        quiet: true,
        ..Default::default()
    };
    let backend = match args.process_group {
        ProcessGroupArg::None => None,
        ProcessGroupArg::Gloo => Some(DistBackend::Gloo),
        ProcessGroupArg::Nccl => Some(DistBackend::Nccl),
    };
    let mut trainer = match backend {
        None => Trainer::new(config.clone(), options)?,
        Some(b) => {
            config.run.dist_backend = b;
            Trainer::with_solo_group(config.clone(), options)?
        }
    };
    let group = format!("{:?}", args.process_group).to_lowercase();
    if let Some(path) = &args.model_json {
        let json = trainer.model().config().to_json()?;
        flowscale_core::write_atomic(path, json.as_bytes())?;
    }
    for _ in 0..args.warmup {
        trainer.step()?;
    }
    let sync_before = trainer.gradient_sync_time();
    let start = std::time::Instant::now();
    for _ in 0..args.steps {
        trainer.step()?;
    }
    trainer.synchronize()?;
    let secs = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&tmp);
    let ms = 1e3 * secs / args.steps as f64;
    // Of each step, the milliseconds spent averaging gradients in the process group.
    let sync_ms = match (sync_before, trainer.gradient_sync_time()) {
        (Some(a), Some(b)) => 1e3 * (b - a).as_secs_f64() / args.steps as f64,
        _ => 0.0,
    };
    let batch = config.train.batch_size;
    let allocator = flowscale_core::host_allocator::current().name();
    if args.json {
        println!(
            "{{\"ms_per_step\": {ms:.3}, \"batch\": {batch}, \"steps\": {}, \"device\": \"{:?}\", \"threads\": {}, \"process_group\": \"{group}\", \"grad_sync_ms_per_step\": {sync_ms:.3}, \"host_allocator\": \"{allocator}\"}}",
            args.steps,
            trainer.device(),
            tch::get_num_threads()
        );
    } else {
        println!(
            "{ms:.1} ms/step, {:.1} images/s (batch {batch}, {} timed steps after {} warm-up, {:?}, {} threads, process group {group}: {sync_ms:.2} ms/step averaging gradients; host allocator: {allocator})",
            1e3 * batch as f64 / ms,
            args.steps,
            args.warmup,
            trainer.device(),
            tch::get_num_threads()
        );
    }
    Ok(())
}
