//! `flowscale report SWEEP [--set KEY=VALUE]...` (a sweep file, or a sweep folder holding
//! `sweep.json`) and `flowscale plot RUN_DIR... --out STEM` (validation curves of any runs).

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use flowscale_study::curves::RunCurves;
use flowscale_study::plot::{save, LinePlot, Series, SeriesStyle};
use flowscale_study::report::write_report;
use flowscale_study::Sweep;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The sweep file, or the sweep's output folder (its sweep.json names the file and the
    /// overrides the sweep ran with).
    sweep: PathBuf,
    /// Override a key of the sweep file, as `flowscale sweep --set` does (repeatable; later
    /// wins; after those sweep.json records).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

pub fn report(args: &ReportArgs) -> anyhow::Result<()> {
    let (file, mut overrides) = if args.sweep.is_dir() {
        let index = args.sweep.join("sweep.json");
        let text = std::fs::read_to_string(&index)
            .with_context(|| format!("{} has no readable sweep.json", args.sweep.display()))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", index.display()))?;
        let Some(file) = v["file"].as_str() else {
            bail!("{}: no \"file\" entry", index.display());
        };
        // The overrides the sweep ran with: without them the file may describe other runs.
        let recorded: Vec<String> = v["set"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect();
        (PathBuf::from(file), recorded)
    } else {
        (args.sweep.clone(), Vec::new())
    };
    overrides.extend(args.overrides.iter().cloned());
    let sweep = Sweep::load_with(&file, &overrides)?;
    let r = write_report(&sweep)?;
    println!("report: {}", r.markdown.display());
    for p in &r.plots {
        println!("plot:   {}", p.display());
    }
    // One line per formulation: nothing is fitted across formulations (their losses are on
    // different scales), and a fit whose exponent the data do not constrain is no result.
    for s in &r.scaling {
        let name = &s.formulation;
        if let Some(f) = &s.fit {
            match f.unconstrained() {
                Some(u) => println!("compute fit ({name}): not constrained by the data: {u}"),
                None => println!(
                    "compute fit ({name}): b = {:.4} [{:.4}, {:.4}] (95% bootstrap)",
                    f.law.b, f.b_ci.0, f.b_ci.1
                ),
            }
        }
        if let Some(f) = &s.size_steps {
            let free = f.unconstrained();
            if free.is_empty() {
                println!(
                    "L(N, S) fit ({name}): alpha = {:.4} [{:.4}, {:.4}], beta = {:.4} [{:.4}, {:.4}] (95% bootstrap)",
                    f.law.alpha, f.alpha_ci.0, f.alpha_ci.1, f.law.beta, f.beta_ci.0, f.beta_ci.1
                );
            }
            for u in free {
                println!("L(N, S) fit ({name}): not constrained by the data: {u}");
            }
        }
    }
    if let Some((spec, ranking)) = &r.results.ranking {
        println!("ranking on {spec}:");
        print!("{}", ranking.to_table());
    }
    for c in &r.results.correlations {
        if let (Some(p), Some(s)) = (c.pearson, c.spearman) {
            println!(
                "correlation of validation loss with {} ({}, {}, {} runs): Pearson r = {p:.3}, Spearman rho = {s:.3}",
                c.metric,
                c.weights,
                c.setting,
                c.pairs.len()
            );
        }
    }
    for (id, why) in &r.results.missing {
        println!("not evaluated: {id} ({why})");
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct PlotArgs {
    /// Run directories.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Output path without extension: STEM.png and STEM.svg are written.
    #[arg(long)]
    out: PathBuf,
    /// Weights to plot (`raw`, `ema0.999`, ...; default: the first EMA, else raw).
    #[arg(long)]
    weights: Option<String>,
}

pub fn plot(args: &PlotArgs) -> anyhow::Result<()> {
    let mut series = Vec::new();
    for run in &args.runs {
        let c = RunCurves::read(run)?;
        let w = match &args.weights {
            Some(w) => w.clone(),
            None => match c.selection_weights() {
                Some(w) => w.to_owned(),
                None => bail!("{}: no validation results in metrics.jsonl", run.display()),
            },
        };
        let Some(points) = c.validation.get(&w) else {
            bail!(
                "{}: no validation results for weights `{w}` (has: {})",
                run.display(),
                c.validation.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        };
        series.push(Series {
            label: format!("{} ({w})", run.display()),
            points: points.iter().map(|&(s, l)| (s as f64, l)).collect(),
            style: SeriesStyle::Measured,
        });
    }
    let (png, svg) = save(
        &LinePlot {
            title: "validation loss".into(),
            x_label: "training step".into(),
            y_label: "validation loss (mean over t < 1)".into(),
            log_x: false,
            log_y: false,
            series,
        },
        &args.out,
    )?;
    println!("{}\n{}", png.display(), svg.display());
    Ok(())
}
