//! `flowscale sweep FILE [--set KEY=VALUE]... --list | --run [--index I] | --slurm OUT.sbatch`.
//! With an `[eval]` section in the sweep file, `--run` also evaluates each finished run
//! (`flowscale eval` at its best EMA validation-loss checkpoint), skipping up-to-date
//! evaluations.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use flowscale_core::write_atomic;
use flowscale_study::{describe, EvalStatus, RunStatus, Sweep};
use flowscale_train::TrainOptions;

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Sweep file (see experiments/): a base config, [set] overrides and [axes].
    file: PathBuf,
    /// Override a key of the sweep file, e.g. `--set sweep.out_dir=runs/other` or
    /// `--set 'set."train.steps"=50'` (repeatable; later wins).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Show the runs: index, ID, status and axis values.
    #[arg(long, conflicts_with_all = ["run", "slurm"])]
    list: bool,
    /// Train the runs one after another here; finished runs are skipped, stopped ones resumed.
    /// With an [eval] section, each finished run is then evaluated (unless up to date).
    #[arg(long, conflicts_with = "slurm")]
    run: bool,
    /// With --run: train only, leave the evaluations for later.
    #[arg(long, requires = "run")]
    no_eval: bool,
    /// With --run: only this run (the Slurm array task index).
    #[arg(long, requires = "run")]
    index: Option<usize>,
    /// Write a Slurm array script with one task per run.
    #[arg(long, value_name = "OUT")]
    slurm: Option<PathBuf>,
}

pub fn run(args: &SweepArgs) -> anyhow::Result<()> {
    let sweep = Sweep::load_with(&args.file, &args.overrides)?;
    let n = sweep.runs.len();
    if let Some(out) = &args.slurm {
        let exe = std::env::current_exe().context("locating the flowscale binary")?;
        // Slurm drops the output of tasks whose --output folder does not exist.
        sweep.write_index()?;
        write_atomic(out, sweep.slurm_script(&exe).as_bytes())?;
        eprintln!(
            "wrote {} ({n} array tasks): sbatch {}",
            out.display(),
            out.display()
        );
        return Ok(());
    }
    if args.run {
        let which: Vec<usize> = match args.index {
            Some(i) if i < n => vec![i],
            Some(i) => bail!(
                "--index {i}: the sweep has {n} runs (0..{})",
                n.saturating_sub(1)
            ),
            None => (0..n).collect(),
        };
        sweep.write_index()?;
        let started = std::time::Instant::now();
        for i in which {
            let r = &sweep.runs[i];
            let status = sweep.status(i)?;
            eprintln!(
                "== run {}/{n} {} ({}): {status}",
                i + 1,
                r.id,
                describe(&r.values)
            );
            if status != RunStatus::Done {
                let t = std::time::Instant::now();
                sweep.run_one(
                    i,
                    &TrainOptions {
                        quiet: true,
                        ..Default::default()
                    },
                )?;
                sweep.write_index()?;
                eprintln!("   trained in {:.0} s", t.elapsed().as_secs_f64());
            }
            if args.no_eval || sweep.eval.is_none() {
                continue;
            }
            match sweep.eval_status(i)? {
                EvalStatus::Done(step, _) => {
                    eprintln!("   evaluation at step {step} is up to date")
                }
                before @ (EvalStatus::Pending(step) | EvalStatus::Stale(step)) => {
                    eprintln!("   evaluating: {before}");
                    let t = std::time::Instant::now();
                    let dir =
                        sweep.evaluate_at(i, step, &mut |line| eprintln!("   eval: {line}"))?;
                    eprintln!(
                        "   evaluated in {:.0} s: {}",
                        t.elapsed().as_secs_f64(),
                        dir.join("results.csv").display()
                    );
                }
                EvalStatus::NotConfigured | EvalStatus::NotTrained => {}
            }
            if !sweep.posthoc_stds.is_empty() {
                let t = std::time::Instant::now();
                let done =
                    sweep.evaluate_posthoc(i, &mut |line| eprintln!("   post-hoc: {line}"))?;
                eprintln!(
                    "   post-hoc EMA stds {:?} evaluated ({:.0} s)",
                    done.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
                    t.elapsed().as_secs_f64()
                );
            }
        }
        eprintln!(
            "sweep {} finished in {:.0} s; index {}",
            sweep.name,
            started.elapsed().as_secs_f64(),
            sweep.out_dir.join("sweep.json").display()
        );
        return Ok(());
    }
    // --list (also the default).
    println!(
        "sweep {}: {n} runs in {}",
        sweep.name,
        sweep.out_dir.display()
    );
    for i in 0..n {
        let r = &sweep.runs[i];
        let mut eval = match sweep.eval_status(i)? {
            EvalStatus::NotConfigured => String::new(),
            e => format!("  [{e}]"),
        };
        let posthoc = sweep.posthoc_status(i)?;
        if !posthoc.is_empty() {
            let done = posthoc
                .iter()
                .filter(|(_, s)| matches!(s, EvalStatus::Done(..)))
                .count();
            eval.push_str(&format!(
                "  [post-hoc EMA: {done}/{} evaluated]",
                posthoc.len()
            ));
        }
        println!(
            "{i:>4}  {}  {:<20}  {}{eval}",
            r.id,
            sweep.status(i)?.to_string(),
            describe(&r.values)
        );
    }
    Ok(())
}
