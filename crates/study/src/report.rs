//! `flowscale report`: a sweep's runs collected into one table (best EMA validation loss, the
//! paper's checkpoint rule), plots, a power-law fit of loss against training compute, the
//! two-variable law `L(N, steps)` and the compute-optimal frontier when the sweep varies model
//! size, the evaluation results (Table-1-style Pareto ranking, loss-vs-metric correlations) when
//! the runs were evaluated, and a Markdown report.

use crate::curves::RunCurves;
use crate::error::{io, Result};
use crate::fit::{fit_power_law, PowerLawFit};
use crate::fit_size_steps::{fit_size_steps, SizeStepsFit};
use crate::frontier::{frontier, optimal_segments, optimal_size_exponent, FrontierPoint, RunCurve};
use crate::plot::{save, LinePlot, Series, SeriesStyle};
use crate::sweep::{describe, Sweep};
use crate::sweep_results::{collect, rows_csv, Correlation, SweepResults};
use flowscale_formulations::Formulation;
use flowscale_train::checkpoint::CheckpointStore;
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
    /// Trainable parameters of the backbone, from the checkpoint's model config.
    pub params: Option<f64>,
    pub curves: RunCurves,
}

impl RunSummary {
    /// The checkpoint-selection weights' validation points after step 0: what the scaling fits
    /// and the frontier use.
    fn fit_points(&self) -> Option<impl Iterator<Item = (u64, f64)> + '_> {
        let w = self.curves.selection_weights()?;
        Some(
            self.curves.validation[w]
                .iter()
                .copied()
                .filter(|&(s, _)| s > 0),
        )
    }
}

pub struct Report {
    pub markdown: PathBuf,
    pub plots: Vec<PathBuf>,
    pub runs: Vec<RunSummary>,
    pub fit: Option<PowerLawFit>,
    /// `L(N, steps)` when the sweep has at least 3 model sizes.
    pub size_steps: Option<SizeStepsFit>,
    /// The compute-optimal frontier when it has 2+ sizes. `FrontierPoint::run` indexes the
    /// trained runs that have both a parameter count and FLOPs per step, in sweep order (not
    /// `runs`).
    pub frontier: Vec<FrontierPoint>,
    pub results: SweepResults,
}

/// Trainable parameters of a run's backbone, counted from the model's own layout for the
/// `config.json` of its newest checkpoint; `None` before the first checkpoint.
fn run_params(dir: &Path) -> Result<Option<f64>> {
    let store = CheckpointStore::new(dir.join("checkpoints"), 1, 0);
    let Ok(Some((_, ck))) = store.latest() else {
        return Ok(None);
    };
    let path = ck.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
    let bad = |e: flowscale_models::ModelError| crate::error::StudyError::Sweep {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let cfg = flowscale_models::MmditConfig::from_json(&text).map_err(bad)?;
    Ok(Some(
        flowscale_models::param_count(&cfg).map_err(bad)?.trainable as f64,
    ))
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
            params: run_params(&dir)?,
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
                    style: SeriesStyle::Measured,
                })
            })
            .collect(),
    }
}

/// Every (training FLOPs, validation loss) point of every run, for the compute fit.
fn compute_points(runs: &[RunSummary]) -> Vec<(f64, f64, usize)> {
    let mut pts = Vec::new();
    for (k, r) in runs.iter().enumerate() {
        let (Some(points), Some(f)) = (r.fit_points(), r.flops_per_step) else {
            continue;
        };
        pts.extend(points.map(|(s, l)| (s as f64 * f, l, k)));
    }
    pts
}

/// A formulation's training-time density moved from its native time onto the common axis
/// `t_eq = sigmoid(-lambda / 2)` (rectified-flow time of equal log-SNR):
/// `p_eq(t_eq) = p(t) / (dt_eq / dt)`, the derivative by central differences over the table.
/// For the rf family `t_eq = t` and nothing changes; eps/v/EDM densities become comparable.
fn density_in_t_eq(rows: &[flowscale_formulations::TableRow]) -> Vec<(f64, f64)> {
    let t_eq = |lambda: f64| 1.0 / (1.0 + (lambda / 2.0).exp());
    rows.windows(3)
        .filter_map(|w| {
            let slope = (t_eq(w[2].lambda) - t_eq(w[0].lambda)) / (w[2].t - w[0].t);
            let p = w[1].density / slope;
            (slope.is_finite() && slope > 0.0 && p.is_finite()).then(|| (t_eq(w[1].lambda), p))
        })
        .collect()
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
            points: density_in_t_eq(&rows),
            style: SeriesStyle::Measured,
        });
        weight.push(Series {
            label: name.to_owned(),
            points: interior
                .filter(|r| r.weight.is_finite() && r.weight > 0.0)
                .map(|r| (r.lambda, r.weight))
                .collect(),
            style: SeriesStyle::Measured,
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
    let size_steps = size_steps_fit(&trained);
    let curves = frontier_curves(&trained);
    let sizes = {
        let mut v: Vec<f64> = curves.iter().map(|c| c.params).collect();
        v.sort_by(f64::total_cmp);
        v.dedup();
        v.len()
    };
    let front = if sizes >= 2 {
        frontier(&curves, 60)
    } else {
        Vec::new()
    };
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
                style: SeriesStyle::Measured,
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
                style: SeriesStyle::Fit,
            });
        }
        if !front.is_empty() {
            series.push(Series {
                label: "compute-optimal frontier".into(),
                points: front.iter().map(|p| (p.compute, p.loss)).collect(),
                // Points, not a line: between runs' measured ranges the frontier has gaps.
                style: SeriesStyle::Scatter,
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
    if let Some(f) = &size_steps {
        plots.push(
            save(
                &size_steps_plot(&trained, f),
                &dir.join("loss-vs-steps-fit"),
            )?
            .0,
        );
    }
    plots.extend(formulation_plots(&runs, &dir)?);
    let results = collect(sweep)?;
    if !results.rows.is_empty() {
        let path = dir.join("results.csv");
        std::fs::write(&path, rows_csv(&results.rows)).map_err(|e| io(&path, e))?;
    }
    if let Some((_, ranking)) = &results.ranking {
        let path = dir.join("ranking.csv");
        std::fs::write(&path, ranking.to_csv()).map_err(|e| io(&path, e))?;
    }
    if results.formulations <= 1 {
        plots.extend(metric_plots(&results, &dir)?);
    }
    let markdown = dir.join("report.md");
    let text = render_markdown(&Rendered {
        sweep,
        runs: &runs,
        fit: fit.as_ref(),
        size_steps: size_steps.as_ref(),
        frontier: &front,
        curves: &curves,
        results: &results,
        plots: &plots,
        dir: &dir,
    });
    std::fs::write(&markdown, text).map_err(|e| io(&markdown, e))?;
    Ok(Report {
        markdown,
        plots,
        runs,
        fit,
        size_steps,
        frontier: front,
        results,
    })
}

/// `L(N, steps)` over every validation point (step > 0) of every trained run with a known size.
fn size_steps_fit(trained: &[RunSummary]) -> Option<SizeStepsFit> {
    let (mut n, mut s, mut y) = (Vec::new(), Vec::new(), Vec::new());
    for r in trained {
        let (Some(p), Some(points)) = (r.params, r.fit_points()) else {
            continue;
        };
        for (step, loss) in points {
            n.push(p);
            s.push(step as f64);
            y.push(loss);
        }
    }
    fit_size_steps(&n, &s, &y, 500, 0)
}

/// Measured loss against steps per run with the `L(N, steps)` fit at each run's size.
fn size_steps_plot(trained: &[RunSummary], f: &SizeStepsFit) -> LinePlot {
    let mut series = Vec::new();
    for r in trained {
        let (Some(p), Some(points)) = (r.params, r.fit_points()) else {
            continue;
        };
        let pts: Vec<(f64, f64)> = points.map(|(s, l)| (s as f64, l)).collect();
        let (lo, hi) = pts.iter().fold((f64::INFINITY, 0.0f64), |(a, b), p| {
            (a.min(p.0), b.max(p.0))
        });
        series.push(Series {
            label: format!("{} ({})", r.values, human(p)),
            points: pts,
            style: SeriesStyle::Measured,
        });
        if lo.is_finite() && hi > lo {
            series.push(Series {
                label: format!("L(N, S) at {}", human(p)),
                points: (0..=40)
                    .map(|i| {
                        let s = lo * (hi / lo).powf(i as f64 / 40.0);
                        (s, f.law.eval(p, s))
                    })
                    .collect(),
                style: SeriesStyle::Fit,
            });
        }
    }
    LinePlot {
        title: "validation loss vs steps with the fit L(N, S)".into(),
        x_label: "training step".into(),
        y_label: "validation loss".into(),
        log_x: true,
        log_y: true,
        series,
    }
}

fn frontier_curves(trained: &[RunSummary]) -> Vec<RunCurve> {
    trained
        .iter()
        .filter_map(|r| {
            let (p, f, points) = (r.params?, r.flops_per_step?, r.fit_points()?);
            Some(RunCurve {
                label: r.values.clone(),
                params: p,
                points: points.map(|(s, l)| (s as f64 * f, l)).collect(),
            })
        })
        .collect()
}

/// Loss-vs-metric scatter plots for the weights the paper selects with (the first EMA), one
/// series per sampler setting (drawn only when the runs share one formulation).
fn metric_plots(results: &SweepResults, dir: &Path) -> Result<Vec<PathBuf>> {
    let Some(weights) = selection_weights(results) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for metric in crate::sweep_results::SAMPLE_METRICS {
        let series: Vec<Series> = results
            .correlations
            .iter()
            .filter(|c| c.metric == metric && c.weights == weights && c.pairs.len() >= 2)
            .map(|c| Series {
                label: c.setting.clone(),
                points: c.pairs.iter().map(|p| (p.1, p.2)).collect(),
                style: SeriesStyle::Scatter,
            })
            .collect();
        if series.is_empty() {
            continue;
        }
        out.push(
            save(
                &LinePlot {
                    title: format!("{metric} vs validation loss ({weights}, one point per run)"),
                    x_label: "validation loss at the evaluated checkpoint".into(),
                    y_label: metric.to_owned(),
                    log_x: false,
                    log_y: false,
                    series,
                },
                &dir.join(format!("val-loss-vs-{metric}")),
            )?
            .0,
        );
    }
    Ok(out)
}

/// The weights checkpoint selection uses among those the results hold.
fn selection_weights(results: &SweepResults) -> Option<String> {
    let mut names: Vec<&str> = results
        .correlations
        .iter()
        .map(|c| c.weights.as_str())
        .collect();
    names.sort();
    names.dedup();
    crate::curves::selection_weights_among(names.into_iter()).map(str::to_owned)
}

fn human(n: f64) -> String {
    if n >= 1e9 {
        format!("{:.2}B", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.2}M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1}k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |x| format!("{x:.digits$}"))
}

struct Rendered<'a> {
    sweep: &'a Sweep,
    runs: &'a [RunSummary],
    fit: Option<&'a PowerLawFit>,
    size_steps: Option<&'a SizeStepsFit>,
    frontier: &'a [FrontierPoint],
    curves: &'a [RunCurve],
    results: &'a SweepResults,
    plots: &'a [PathBuf],
    dir: &'a Path,
}

fn render_markdown(r: &Rendered) -> String {
    let (sweep, runs) = (r.sweep, r.runs);
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
    let formulations = formulation_count(runs);
    if formulations > 1 {
        let _ = writeln!(
            md,
            "The {formulations} formulations are not ranked against each other by this table: \
             {MIXED_LOSSES}. The sample metrics below rank them.\n"
        );
    }
    let mut order: Vec<&RunSummary> = runs.iter().collect();
    order.sort_by(|a, b| {
        let key = |r: &RunSummary| r.best.map_or(f64::INFINITY, |b| b.1);
        key(a).total_cmp(&key(b))
    });
    let _ = writeln!(
        md,
        "| rank | run | setting | parameters | best val loss | at step | last val loss | training FLOPs at best | status |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
    for (i, run) in order.iter().enumerate() {
        let best = run.best.map_or("-".into(), |b| format!("{:.5}", b.1));
        let at = run.best.map_or("-".into(), |b| b.0.to_string());
        let last = run.last.map_or("-".into(), |b| format!("{:.5}", b.1));
        let flops = match (run.best, run.flops_per_step) {
            (Some((s, _)), Some(f)) => format!("{:.3e}", s as f64 * f),
            _ => "-".into(),
        };
        let params = run.params.map_or("-".into(), |p| format!("{p:.0}"));
        let _ = writeln!(
            md,
            "| {} | `{}` | {} | {params} | {best} | {at} | {last} | {flops} | {} |",
            i + 1,
            run.id,
            run.values,
            run.status
        );
    }
    md.push('\n');
    match r.fit {
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
    render_scaling(&mut md, r);
    render_results(&mut md, r);
    for p in r.plots {
        let rel = p.strip_prefix(r.dir).unwrap_or(p);
        let _ = writeln!(md, "![{}]({})\n", rel.display(), rel.display());
    }
    md
}

fn render_scaling(md: &mut String, r: &Rendered) {
    if let Some(f) = r.size_steps {
        let l = &f.law;
        let _ = writeln!(
            md,
            "## Size and steps\n\n`L(N, S) = a (N / N0)^(-alpha) + b (S / S0)^(-beta) + c` over {} \
             validation points (N = trainable parameters, S = training steps; N0 = {:.4e}, S0 = \
             {:.1}): a = {:.4} [{:.4}, {:.4}], alpha = {:.4} [{:.4}, {:.4}], b = {:.4} [{:.4}, \
             {:.4}], beta = {:.4} [{:.4}, {:.4}], c = {:.4} [{:.4}, {:.4}] (95% percentile \
             bootstrap, {} resamples; rms log residual {:.4}).\n",
            f.points,
            l.n0,
            l.s0,
            l.a,
            f.a_ci.0,
            f.a_ci.1,
            l.alpha,
            f.alpha_ci.0,
            f.alpha_ci.1,
            l.b,
            f.b_ci.0,
            f.b_ci.1,
            l.beta,
            f.beta_ci.0,
            f.beta_ci.1,
            l.c,
            f.c_ci.0,
            f.c_ci.1,
            f.resamples,
            f.rms_log_residual
        );
    }
    if r.frontier.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "## Compute-optimal frontier\n\nAt each training budget, the run with the lowest \
         validation loss among those that spent that budget (each run's curve interpolated \
         log-log between its validation points, never extrapolated):\n"
    );
    let _ = writeln!(
        md,
        "| optimal run | parameters | from FLOPs | to FLOPs | loss at start | loss at end |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    for (run, from, to) in optimal_segments(r.frontier) {
        let at = |c: f64| {
            r.frontier
                .iter()
                .find(|p| p.compute == c)
                .map_or(f64::NAN, |p| p.loss)
        };
        let c = &r.curves[run];
        let _ = writeln!(
            md,
            "| {} | {:.0} | {from:.3e} | {to:.3e} | {:.5} | {:.5} |",
            c.label,
            c.params,
            at(from),
            at(to)
        );
    }
    md.push('\n');
    match optimal_size_exponent(r.frontier, r.curves) {
        Some(k) => {
            let _ = writeln!(
                md,
                "Compute-optimal size along the frontier: `N_opt ∝ C^{k:.3}` (least squares in \
                 log-log over the frontier points).\n"
            );
        }
        None => {
            let _ = writeln!(
                md,
                "Fewer than 3 model sizes are ever optimal, so no `N_opt ∝ C^k` exponent is \
                 fitted.\n"
            );
        }
    }
}

fn render_results(md: &mut String, r: &Rendered) {
    let res = r.results;
    if r.sweep.eval.is_none() {
        let _ = writeln!(
            md,
            "The sweep file has no `[eval]` section, so no sample metrics (FID, CLIP score, \
             class accuracy) or Pareto ranking are in this report.\n"
        );
        return;
    }
    let _ = writeln!(md, "## Evaluation\n");
    if !res.missing.is_empty() {
        let list: Vec<String> = res
            .missing
            .iter()
            .map(|(id, why)| format!("`{id}` ({why})"))
            .collect();
        let _ = writeln!(
            md,
            "Not evaluated (run `flowscale sweep FILE --run` to finish them): {}.\n",
            list.join(", ")
        );
    }
    if res.rows.is_empty() {
        return;
    }
    let label = |id: &str| -> String {
        r.runs
            .iter()
            .find(|x| x.id == id)
            .map_or(id.to_owned(), |x| x.values.clone())
    };
    let _ = writeln!(
        md,
        "All rows: `results.csv` (the columns of `flowscale eval`, each run at its selected \
         checkpoint).\n"
    );
    if let Some((spec, ranking)) = &res.ranking {
        let _ = writeln!(
            md,
            "### Ranking\n\nThe paper's rule: per setting (weights x sampler setting), \
             non-dominated sorting on `{spec}`; rank 1 = the Pareto front. Columns: the mean \
             rank over all {} settings and over the settings of each sampler step count \
             (Table 1 of the paper shows all, 5 steps and 50 steps). Per-setting ranks: \
             `ranking.csv`.\n",
            ranking.settings.len()
        );
        let mut head = "| # | run | setting | all |".to_string();
        let mut rule = "|---|---|---|---|".to_string();
        for (l, _) in &ranking.step_subsets {
            head.push_str(&format!(" {l} |"));
            rule.push_str("---|");
        }
        let _ = writeln!(md, "{head}\n{rule}");
        for (i, c) in ranking.rows.iter().enumerate() {
            let mut line = format!(
                "| {} | `{}` | {} | {:.2} |",
                i + 1,
                c.candidate,
                label(&c.candidate),
                c.mean
            );
            for m in &c.subset_means {
                line.push_str(&format!(" {m:.2} |"));
            }
            let _ = writeln!(md, "{line}");
        }
        md.push('\n');
    }
    render_metric_table(md, res);
    render_correlations(md, res);
}

/// How many formulations the sweep's runs use.
fn formulation_count(runs: &[RunSummary]) -> usize {
    let mut names: Vec<&str> = runs.iter().map(|r| r.formulation.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names.len()
}

/// Why validation losses of several formulations do not compare.
const MIXED_LOSSES: &str = "each run's validation loss is its own formulation's training loss \
     (its target and weighting), so the losses of different formulations are on different scales";

/// The selection weights' metric values per run and sampler setting.
fn render_metric_table(md: &mut String, res: &SweepResults) {
    let Some(w) = selection_weights(res) else {
        return;
    };
    let mut settings: Vec<&String> = res
        .correlations
        .iter()
        .filter(|c| c.weights == w)
        .map(|c| &c.setting)
        .collect();
    settings.sort();
    settings.dedup();
    for metric in crate::sweep_results::SAMPLE_METRICS {
        let cols: Vec<&Correlation> = settings
            .iter()
            .filter_map(|s| {
                res.correlations
                    .iter()
                    .find(|c| c.metric == metric && c.weights == w && &&c.setting == s)
            })
            .collect();
        if cols.is_empty() {
            continue;
        }
        let _ = writeln!(md, "### {metric} ({w})\n");
        let mut head = "| run | val loss |".to_string();
        let mut rule = "|---|---|".to_string();
        for c in &cols {
            head.push_str(&format!(" {} |", c.setting));
            rule.push_str("---|");
        }
        let _ = writeln!(md, "{head}\n{rule}");
        let mut runs: Vec<(&String, f64)> = cols[0].pairs.iter().map(|p| (&p.0, p.1)).collect();
        runs.sort_by(|a, b| a.1.total_cmp(&b.1));
        for (run, loss) in runs {
            let mut line = format!("| `{run}` | {loss:.5} |");
            for c in &cols {
                let v = c.pairs.iter().find(|p| &p.0 == run).map(|p| p.2);
                line.push_str(&format!(" {} |", opt(v, 4)));
            }
            let _ = writeln!(md, "{line}");
        }
        md.push('\n');
    }
}

fn render_correlations(md: &mut String, res: &SweepResults) {
    if res.correlations.is_empty() {
        return;
    }
    let formulations = res.formulations;
    if formulations > 1 {
        let _ = writeln!(
            md,
            "### Validation loss vs sample metrics\n\nNot computed: these runs use \
             {formulations} formulations, and {MIXED_LOSSES}. The paper's claim that validation \
             loss predicts sample quality is made across model sizes trained with one \
             formulation: a scaling sweep with an `[eval]` section reports it.\n"
        );
        return;
    }
    let _ = writeln!(
        md,
        "### Validation loss vs sample metrics\n\nAcross runs, each run's validation loss at its \
         evaluated checkpoint against each metric, per weights and sampler setting (the paper \
         claims validation loss predicts sample quality: FID should rise with loss, CLIP score \
         and class accuracy fall).\n"
    );
    let _ = writeln!(
        md,
        "| metric | weights | setting | runs | Pearson r | Spearman rho |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    for c in &res.correlations {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            c.metric,
            c.weights,
            c.setting,
            c.pairs.len(),
            opt(c.pearson, 3),
            opt(c.spearman, 3)
        );
    }
    md.push('\n');
    let mut keys: Vec<(&String, &String)> = res
        .correlations
        .iter()
        .map(|c| (&c.metric, &c.weights))
        .collect();
    keys.sort();
    keys.dedup();
    for (m, w) in keys {
        let rs: Vec<f64> = res
            .correlations
            .iter()
            .filter(|c| &c.metric == m && &c.weights == w)
            .filter_map(|c| c.pearson)
            .collect();
        if !rs.is_empty() {
            let _ = writeln!(
                md,
                "- {m} ({w}): mean Pearson r over {} settings = {:.3}",
                rs.len(),
                rs.iter().sum::<f64>() / rs.len() as f64
            );
        }
    }
    md.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(name: &str) -> Vec<(f64, f64)> {
        let f = Formulation::parse(name).unwrap();
        density_in_t_eq(&flowscale_formulations::table(f, 2001, None))
    }

    /// Trapezoid integral of the density over t_eq.
    fn mass(points: &[(f64, f64)]) -> f64 {
        points
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0)
            .sum()
    }

    #[test]
    fn densities_move_onto_equal_log_snr_time() {
        // rf: t_eq = t, the density is unchanged (1 for uniform t).
        for (t, p) in curve("rf") {
            assert!((p - 1.0).abs() < 1e-6, "rf at {t}: {p}");
        }
        // v/cos samples t uniformly, which is not uniform in t_eq; the moved density still
        // integrates to 1 (less the tails outside the table) and peaks in the middle.
        let v = curve("v/cos");
        assert!((mass(&v) - 1.0).abs() < 5e-3, "{}", mass(&v));
        let at = |pts: &[(f64, f64)], x: f64| {
            pts.iter()
                .min_by(|a, b| (a.0 - x).abs().total_cmp(&(b.0 - x).abs()))
                .unwrap()
                .1
        };
        assert!(
            at(&v, 0.5) > 1.2 * at(&v, 0.1),
            "{} {}",
            at(&v, 0.5),
            at(&v, 0.1)
        );
        // rf/lognorm(0, 1): t_eq = t, the logit-normal density, peak 1.59 at 0.5.
        let l = curve("rf/lognorm(0.00, 1.00)");
        assert!((at(&l, 0.5) - 1.596).abs() < 0.01, "{}", at(&l, 0.5));
    }
}
