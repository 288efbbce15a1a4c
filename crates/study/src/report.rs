//! `flowscale report`: a sweep's runs collected into one table (best EMA validation loss, the
//! paper's checkpoint rule), plots, a power-law fit of loss against training compute, and a
//! Markdown report.

use crate::curves::RunCurves;
use crate::error::{io, Result};
use crate::fit::{fit_power_law, PowerLawFit};
use crate::plot::{save, LinePlot, Series};
use crate::sweep::{describe, Sweep};
use flowscale_formulations::Formulation;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One run's row of the report.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub id: String,
    pub values: String,
    pub status: String,
    pub formulation: String,
    pub best: Option<(u64, f64)>,
    pub last: Option<(u64, f64)>,
    pub flops_per_step: Option<f64>,
    pub curves: RunCurves,
}

pub struct Report {
    pub markdown: PathBuf,
    pub plots: Vec<PathBuf>,
    pub runs: Vec<RunSummary>,
    pub fit: Option<PowerLawFit>,
}

pub fn summarise(sweep: &Sweep) -> Result<Vec<RunSummary>> {
    let mut out = Vec::new();
    for (i, r) in sweep.runs.iter().enumerate() {
        let dir = sweep.run_dir(i);
        let curves = if dir.join("metrics.jsonl").is_file() {
            RunCurves::read(&dir)?
        } else {
            RunCurves::default()
        };
        let last = curves
            .selection_weights()
            .and_then(|w| curves.validation[w].last().copied());
        out.push(RunSummary {
            id: r.id.clone(),
            values: describe(&r.values),
            status: sweep.status(i)?.to_string(),
            formulation: r.config.formulation.name.clone(),
            best: curves.best(),
            last,
            flops_per_step: curves.flops_per_step,
            curves,
        });
    }
    Ok(out)
}

fn validation_plot(runs: &[RunSummary]) -> LinePlot {
    LinePlot {
        title: "validation loss (checkpoint-selection weights)".into(),
        x_label: "training step".into(),
        y_label: "validation loss (mean over t < 1)".into(),
        log_x: false,
        log_y: false,
        series: runs
            .iter()
            .filter_map(|r| {
                let w = r.curves.selection_weights()?;
                Some(Series {
                    label: r.values.clone(),
                    points: r.curves.validation[w]
                        .iter()
                        .map(|&(s, l)| (s as f64, l))
                        .collect(),
                    dashed: false,
                })
            })
            .collect(),
    }
}

/// Every (training FLOPs, validation loss) point of every run, for the compute fit.
fn compute_points(runs: &[RunSummary]) -> Vec<(f64, f64, usize)> {
    let mut pts = Vec::new();
    for (k, r) in runs.iter().enumerate() {
        let (Some(w), Some(f)) = (r.curves.selection_weights(), r.flops_per_step) else {
            continue;
        };
        for &(s, l) in &r.curves.validation[w] {
            if s > 0 {
                pts.push((s as f64 * f, l, k));
            }
        }
    }
    pts
}

fn formulation_plots(runs: &[RunSummary], dir: &Path) -> Result<Vec<PathBuf>> {
    let mut names: Vec<&str> = runs.iter().map(|r| r.formulation.as_str()).collect();
    names.sort();
    names.dedup();
    if names.len() < 2 {
        return Ok(Vec::new());
    }
    let mut density = Vec::new();
    let mut weight = Vec::new();
    for name in names {
        let Ok(f) = Formulation::parse(name) else {
            continue;
        };
        let rows = flowscale_formulations::table(f, 201, None);
        let interior = rows.iter().filter(|r| r.t > 0.0 && r.t < 1.0);
        density.push(Series {
            label: name.to_owned(),
            points: interior.clone().map(|r| (r.t, r.density)).collect(),
            dashed: false,
        });
        weight.push(Series {
            label: name.to_owned(),
            points: interior
                .filter(|r| r.weight.is_finite() && r.weight > 0.0)
                .map(|r| (r.lambda, r.weight))
                .collect(),
            dashed: false,
        });
    }
    let (d, _) = save(
        &LinePlot {
            title: "timestep density p(t)".into(),
            x_label: "t (rectified-flow time of equal log-SNR)".into(),
            y_label: "density".into(),
            log_x: false,
            log_y: false,
            series: density,
        },
        &dir.join("formulation-density"),
    )?;
    let (w, _) = save(
        &LinePlot {
            title: "effective loss weight w(lambda)".into(),
            x_label: "log-SNR lambda".into(),
            y_label: "w(lambda)".into(),
            log_x: false,
            log_y: true,
            series: weight,
        },
        &dir.join("formulation-weight"),
    )?;
    Ok(vec![d, w])
}

/// Writes `report.md` and its plots into `<sweep out_dir>/report/`.
pub fn write_report(sweep: &Sweep) -> Result<Report> {
    let runs = summarise(sweep)?;
    let dir = sweep.out_dir.join("report");
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let mut plots = Vec::new();
    let trained: Vec<RunSummary> = runs.iter().filter(|r| r.best.is_some()).cloned().collect();
    if !trained.is_empty() {
        plots.push(save(&validation_plot(&trained), &dir.join("validation-loss"))?.0);
    }
    let pts = compute_points(&trained);
    let fit = fit_power_law(
        &pts.iter().map(|p| p.0).collect::<Vec<_>>(),
        &pts.iter().map(|p| p.1).collect::<Vec<_>>(),
        1000,
        0,
    );
    if !pts.is_empty() {
        let mut series: Vec<Series> = trained
            .iter()
            .enumerate()
            .map(|(k, r)| Series {
                label: r.values.clone(),
                points: pts
                    .iter()
                    .filter(|p| p.2 == k)
                    .map(|p| (p.0, p.1))
                    .collect(),
                dashed: false,
            })
            .collect();
        if let Some(f) = &fit {
            let lo = pts.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
            let hi = pts.iter().map(|p| p.0).fold(0.0, f64::max);
            series.push(Series {
                label: format!("fit: b = {:.3}", f.law.b),
                points: (0..=50)
                    .map(|i| {
                        let c = lo * (hi / lo).powf(i as f64 / 50.0);
                        (c, f.law.eval(c))
                    })
                    .collect(),
                dashed: true,
            });
        }
        plots.push(
            save(
                &LinePlot {
                    title: "validation loss vs training compute".into(),
                    x_label: "training FLOPs (3 x forward, matrix products)".into(),
                    y_label: "validation loss".into(),
                    log_x: true,
                    log_y: true,
                    series,
                },
                &dir.join("loss-vs-flops"),
            )?
            .0,
        );
    }
    plots.extend(formulation_plots(&runs, &dir)?);
    let markdown = dir.join("report.md");
    std::fs::write(
        &markdown,
        render_markdown(sweep, &runs, fit.as_ref(), &plots, &dir),
    )
    .map_err(|e| io(&markdown, e))?;
    Ok(Report {
        markdown,
        plots,
        runs,
        fit,
    })
}

fn render_markdown(
    sweep: &Sweep,
    runs: &[RunSummary],
    fit: Option<&PowerLawFit>,
    plots: &[PathBuf],
    dir: &Path,
) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Sweep `{}`\n", sweep.name);
    let _ = writeln!(
        md,
        "{} runs from `{}` (base `{}`); axes: {}.\n",
        runs.len(),
        sweep.file.display(),
        sweep.base.display(),
        sweep.axes.join(", ")
    );
    let _ = writeln!(
        md,
        "Checkpoint selection: the step with the lowest validation loss of the first EMA \
         (the paper's rule). Validation loss: the mean over the 8 levels t < 1 with fixed noise.\n"
    );
    let mut order: Vec<&RunSummary> = runs.iter().collect();
    order.sort_by(|a, b| {
        let key = |r: &RunSummary| r.best.map_or(f64::INFINITY, |b| b.1);
        key(a).total_cmp(&key(b))
    });
    let _ = writeln!(
        md,
        "| rank | run | setting | best val loss | at step | last val loss | training FLOPs at best | status |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
    for (i, r) in order.iter().enumerate() {
        let best = r.best.map_or("-".into(), |b| format!("{:.5}", b.1));
        let at = r.best.map_or("-".into(), |b| b.0.to_string());
        let last = r.last.map_or("-".into(), |b| format!("{:.5}", b.1));
        let flops = match (r.best, r.flops_per_step) {
            (Some((s, _)), Some(f)) => format!("{:.3e}", s as f64 * f),
            _ => "-".into(),
        };
        let _ = writeln!(
            md,
            "| {} | `{}` | {} | {best} | {at} | {last} | {flops} | {} |",
            i + 1,
            r.id,
            r.values,
            r.status
        );
    }
    md.push('\n');
    match fit {
        Some(f) => {
            let _ = writeln!(
                md,
                "Compute fit over every validation point of every run: `L(C) = a (C / C0)^(-b) + c` \
                 with C0 = {:.3e} FLOPs: a = {:.4} [{:.4}, {:.4}], b = {:.4} [{:.4}, {:.4}], \
                 c = {:.4} [{:.4}, {:.4}] (95% percentile bootstrap, {} resamples; rms log \
                 residual {:.4}).\n",
                f.law.c0,
                f.law.a,
                f.a_ci.0,
                f.a_ci.1,
                f.law.b,
                f.b_ci.0,
                f.b_ci.1,
                f.law.c,
                f.c_ci.0,
                f.c_ci.1,
                f.resamples,
                f.rms_log_residual
            );
        }
        None => {
            let _ = writeln!(
                md,
                "No compute fit: fewer than 4 distinct compute values with validation losses.\n"
            );
        }
    }
    let _ = writeln!(
        md,
        "Sample metrics (FID, CLIP score) and the Pareto ranking come from `flowscale eval` and \
         `flowscale rank` over the runs (issue #7); this report covers validation loss.\n"
    );
    for p in plots {
        let rel = p.strip_prefix(dir).unwrap_or(p);
        let _ = writeln!(md, "![{}]({})\n", rel.display(), rel.display());
    }
    md
}
