//! `flowscale ema-reconstruct RUN --std S [--std S2 ...] [--at-step T]`: EDM2's post-hoc EMA.
//! Reconstructs the power-function EMA of each std from the run's snapshots
//! (`[ema] posthoc`) and writes it as a checkpoint that eval, generate and export read
//! (`--weights phema`).

use clap::Args;
use flowscale_train::posthoc::reconstruct_run;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct EmaReconstructArgs {
    /// The run directory (holding posthoc/snapshots.json and checkpoints/).
    run: PathBuf,
    /// Relative std of the EMA to reconstruct (EDM2's sigma_rel, in (0, 0.2887)); repeatable.
    #[arg(long = "std", required = true)]
    stds: Vec<f64>,
    /// The step to reconstruct at: one with a run checkpoint (default: the newest step with
    /// both a checkpoint and a snapshot).
    #[arg(long)]
    at_step: Option<u64>,
}

pub fn run(args: &EmaReconstructArgs) -> anyhow::Result<()> {
    for w in reconstruct_run(&args.run, &args.stds, args.at_step)? {
        let r = &w.reconstruction;
        let sum: f64 = r.fit.coefficients.iter().sum();
        println!(
            "std {} (gamma {:.4}) at step {}: {} snapshots, relative residual of the profile \
             {:.3e}, coefficient sum {sum:.8} -> {}",
            r.std,
            r.gamma,
            r.step,
            r.sources.len(),
            r.fit.relative_residual,
            w.checkpoint.display()
        );
    }
    Ok(())
}
