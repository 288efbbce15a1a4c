//! The report's plots, drawn from the [`Report`]: validation curves, loss against compute with
//! each formulation's fit and frontier, loss against steps with each formulation's `L(N, S)`,
//! the formulations' densities and weights, and loss against each sample metric. A fit that
//! does not constrain its exponents is not drawn: its curve would look like a result.

use super::{formulation_plots, Report, RunSummary, Scaling};
use crate::error::Result;
use crate::fit_size_steps::SizeStepsFit;
use crate::plot::{save, LinePlot, Series, SeriesStyle};
use crate::sweep_results::SAMPLE_METRICS;
use std::path::{Path, PathBuf};

/// Draws every plot the report has data for into `dir`; returns the PNG paths in the order the
/// Markdown shows them.
pub(super) fn draw(report: &Report, dir: &Path) -> Result<Vec<PathBuf>> {
    let trained: Vec<&RunSummary> = report.trained().collect();
    let mut plots = Vec::new();
    if !trained.is_empty() {
        plots.push(save(&validation_plot(&trained), &dir.join("validation-loss"))?.0);
    }
    if report.scaling.iter().any(|s| !s.compute_points.is_empty()) {
        plots.push(save(&compute_plot(report), &dir.join("loss-vs-flops"))?.0);
    }
    if report.backbones.len() > 1 {
        plots.push(
            save(
                &super::backbone_plots::loss_vs_flops(&trained),
                &dir.join("loss-vs-flops-by-backbone"),
            )?
            .0,
        );
    }
    plots.extend(size_steps_plots(report, &trained, dir)?);
    plots.extend(formulation_plots::draw(&report.formulations, dir)?);
    // Losses of several formulations are on different scales: no loss-vs-metric plots.
    if report.results.formulations <= 1 {
        plots.extend(metric_plots(report, dir)?);
    }
    Ok(plots)
}

/// Loss against steps with `L(N, S)`, for each formulation whose fit constrains both exponents.
fn size_steps_plots(report: &Report, trained: &[&RunSummary], dir: &Path) -> Result<Vec<PathBuf>> {
    let mut plots = Vec::new();
    let several = report.formulations.len() > 1;
    for s in &report.scaling {
        let Some(f) = s
            .size_steps
            .as_ref()
            .filter(|f| f.unconstrained().is_empty())
        else {
            continue;
        };
        let runs: Vec<&RunSummary> = trained
            .iter()
            .copied()
            .filter(|r| r.formulation == s.formulation)
            .collect();
        let (file, title) = if several {
            (
                format!("loss-vs-steps-fit-{}", slug(&s.formulation)),
                format!(
                    "{}: validation loss vs steps with the fit L(N, S)",
                    s.formulation
                ),
            )
        } else {
            (
                "loss-vs-steps-fit".to_owned(),
                "validation loss vs steps with the fit L(N, S)".to_owned(),
            )
        };
        plots.push(save(&size_steps_plot(&runs, f, title), &dir.join(file))?.0);
    }
    Ok(plots)
}

fn validation_plot(trained: &[&RunSummary]) -> LinePlot {
    LinePlot {
        title: "validation loss (checkpoint-selection weights)".into(),
        x_label: "training step".into(),
        y_label: "validation loss (mean over t < 1)".into(),
        log_x: false,
        log_y: false,
        series: trained
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

/// A formulation name as a file-name part: `rf/lognorm(0.00, 1.00)` -> `rf-lognorm-0-00-1-00`.
fn slug(name: &str) -> String {
    let mapped: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    mapped
        .split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// Every run's loss against training FLOPs and, per formulation, the `L(C)` fit across its
/// runs' range (when it constrains its exponent) and the compute-optimal frontier.
fn compute_plot(report: &Report) -> LinePlot {
    let several = report.formulations.len() > 1;
    let mut series = Vec::new();
    for s in &report.scaling {
        let mut runs: Vec<usize> = s.compute_points.iter().map(|p| p.2).collect();
        runs.dedup();
        for k in runs {
            series.push(Series {
                label: report.runs[k].values.clone(),
                points: s
                    .compute_points
                    .iter()
                    .filter(|p| p.2 == k)
                    .map(|p| (p.0, p.1))
                    .collect(),
                style: SeriesStyle::Measured,
            });
        }
    }
    for s in &report.scaling {
        let of = if several {
            format!(" ({})", s.formulation)
        } else {
            String::new()
        };
        series.extend(compute_fit_series(s, &of));
        if !s.frontier.is_empty() {
            series.push(Series {
                label: format!("compute-optimal frontier{of}"),
                points: s.frontier.iter().map(|p| (p.compute, p.loss)).collect(),
                // Points, not a line: between runs' measured ranges the frontier has gaps.
                style: SeriesStyle::Scatter,
            });
        }
    }
    LinePlot {
        title: "validation loss vs training compute".into(),
        x_label: "training FLOPs (3 x forward, matrix products)".into(),
        y_label: "validation loss".into(),
        log_x: true,
        log_y: true,
        series,
    }
}

/// The `L(C)` curve over the range of `s`'s points, when the fit constrains its exponent.
fn compute_fit_series(s: &Scaling, of: &str) -> Option<Series> {
    let f = s.fit.as_ref().filter(|f| f.unconstrained().is_none())?;
    let pts = &s.compute_points;
    let lo = pts.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let hi = pts.iter().map(|p| p.0).fold(0.0, f64::max);
    Some(Series {
        label: format!("fit{of}: b = {:.3}", f.law.b),
        points: (0..=50)
            .map(|i| {
                let c = lo * (hi / lo).powf(i as f64 / 50.0);
                (c, f.law.eval(c))
            })
            .collect(),
        style: SeriesStyle::Fit,
    })
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

/// Measured loss against steps per run (of one formulation) with the `L(N, steps)` fit at each
/// run's size.
fn size_steps_plot(trained: &[&RunSummary], f: &SizeStepsFit, title: String) -> LinePlot {
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
        title,
        x_label: "training step".into(),
        y_label: "validation loss".into(),
        log_x: true,
        log_y: true,
        series,
    }
}

/// Loss-vs-metric scatter plots for the weights the paper selects with (the first EMA), one
/// series per sampler setting.
fn metric_plots(report: &Report, dir: &Path) -> Result<Vec<PathBuf>> {
    let Some(weights) = &report.metric_weights else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for metric in SAMPLE_METRICS {
        let series: Vec<Series> = report
            .results
            .correlations
            .iter()
            .filter(|c| c.metric == metric && &c.weights == weights && c.pairs.len() >= 2)
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
