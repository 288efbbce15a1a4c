//! `flowscale train CONFIG [--set key=value]... [--resume]`.

use std::path::PathBuf;

use clap::Args;
use flowscale_torch_ext::c10d::LaunchEnv;
use flowscale_train::config::{load, RunConfig};
use flowscale_train::{train, TrainError, TrainOptions};

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Run config (TOML); `flowscale config CONFIG` shows every key with its default.
    config: PathBuf,
    /// Override a key, e.g. `--set optim.lr=3e-4` (repeatable; later wins).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Continue from the newest complete checkpoint of the run directory.
    #[arg(long)]
    resume: bool,
    /// Stop after this many steps (checkpointing there) as a preempted job would; the schedule
    /// still targets train.steps, and --resume continues.
    #[arg(long, value_name = "STEP")]
    stop_at: Option<u64>,
    /// Force the progress bar on or off (default: on when stderr is a terminal).
    #[arg(long)]
    progress: Option<bool>,
}

pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    let config: RunConfig = load(&args.config, &args.overrides)?;
    let dir = PathBuf::from(&config.run.out_dir).join(&config.run.name);
    // Under a launcher only rank 0 talks; the others would repeat it.
    let rank = LaunchEnv::from_env()?.map_or(0, |e| e.rank);
    let started = std::time::Instant::now();
    let result = train(
        config,
        TrainOptions {
            resume: args.resume,
            progress: args.progress,
            stop_at: args.stop_at,
            quiet: rank != 0,
            ..Default::default()
        },
    );
    let state = match result {
        Ok(state) => state,
        // Preempted: the checkpoint is written; exit as a process killed by that signal would
        // (128 + signal), which schedulers read as "interrupted", not "failed".
        Err(e @ TrainError::Interrupted { signal, .. }) => {
            if rank == 0 {
                eprintln!("{e}");
            }
            std::process::exit(128 + signal);
        }
        Err(e) => return Err(e.into()),
    };
    if rank != 0 {
        return Ok(());
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "trained to step {} ({} images) in {secs:.0} s; run directory {}",
        state.step,
        state.images_seen,
        dir.display()
    );
    if let Some((loss, step)) = state.best_val_loss {
        eprintln!("best validation loss {loss:.5} at step {step}");
    }
    eprintln!(
        "  samples:     {}/samples/\n  curves:      tensorboard --logdir {}/tb  (and {}/metrics.jsonl)\n  checkpoints: {}/checkpoints/",
        dir.display(),
        dir.display(),
        dir.display(),
        dir.display()
    );
    Ok(())
}
