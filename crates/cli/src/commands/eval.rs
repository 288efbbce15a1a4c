//! `flowscale eval RUN_DIR|CHECKPOINT [--config EVAL.toml] [--set KEY=VALUE]... [--step N |
//! --best-val-loss]`: validation loss, sampler-setting grid, FID and class accuracy for raw and
//! EMA weights (crates/eval/src/evaluate.rs).

use clap::Args;
use flowscale_eval::config::EvalConfig;
use flowscale_eval::evaluate::{evaluate, EvalRequest};
use flowscale_train::export::StepChoice;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A run directory or one checkpoint folder (checkpoints/step-NNNNNNNNN).
    source: PathBuf,
    /// Eval config (TOML); without it every key takes its default (the paper's protocol).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override a key of the eval config, e.g. --set sampling.n=100 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Evaluate the checkpoint of this step (default: the newest).
    #[arg(long, conflicts_with = "best_val_loss")]
    step: Option<u64>,
    /// Evaluate the checkpoint with the lowest EMA validation loss.
    #[arg(long)]
    best_val_loss: bool,
}

pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    let config: EvalConfig = match &args.config {
        Some(path) => flowscale_train::config::load(path, &args.overrides)?,
        None => flowscale_train::config::load_str(
            "",
            std::path::Path::new("<defaults>"),
            &args.overrides,
        )?,
    };
    let req = EvalRequest {
        source: args.source.clone(),
        step: match (args.step, args.best_val_loss) {
            (Some(n), _) => StepChoice::Step(n),
            (None, true) => StepChoice::BestValLoss,
            (None, false) => StepChoice::Latest,
        },
        config,
    };
    let outcome = evaluate(&req, &mut |line| eprintln!("eval: {line}"))?;
    println!(
        "{:<10} {:<12} {:<16} {:>12}",
        "weights", "setting", "metric", "value"
    );
    for r in outcome
        .rows
        .iter()
        .filter(|r| !r.metric.starts_with("val_loss_t"))
    {
        println!(
            "{:<10} {:<12} {:<16} {:>12.5}",
            r.weights, r.setting, r.metric, r.value
        );
    }
    println!(
        "wrote {0}/results.json, {0}/results.csv and {1} sample grids",
        outcome.out_dir.display(),
        outcome.grids.len()
    );
    Ok(())
}
