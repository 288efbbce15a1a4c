//! The report's plots, drawn from the [`Report`]: validation curves, loss against compute with
//! the fit and the frontier, loss against steps with `L(N, S)`, the formulations' densities and
//! weights, and loss against each sample metric.

use super::{formulation_plots, Report, RunSummary};
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
    if !report.compute_points.is_empty() {
        plots.push(save(&compute_plot(report, &trained), &dir.join("loss-vs-flops"))?.0);
    }
    if let Some(f) = &report.size_steps {
        plots.push(
            save(
                &size_steps_plot(&trained, f),
                &dir.join("loss-vs-steps-fit"),
            )?
            .0,
        );
    }
    plots.extend(formulation_plots::draw(&report.formulations, dir)?);
    // Losses of several formulations are on different scales: no loss-vs-metric plots.
    if report.results.formulations <= 1 {
        plots.extend(metric_plots(report, dir)?);
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

/// Every run's loss against training FLOPs, the `L(C)` fit across their range and the
/// compute-optimal frontier.
fn compute_plot(report: &Report, trained: &[&RunSummary]) -> LinePlot {
    let pts = &report.compute_points;
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
    if let Some(f) = &report.fit {
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
    if !report.frontier.is_empty() {
        series.push(Series {
            label: "compute-optimal frontier".into(),
            points: report
                .frontier
                .iter()
                .map(|p| (p.compute, p.loss))
                .collect(),
            // Points, not a line: between runs' measured ranges the frontier has gaps.
            style: SeriesStyle::Scatter,
        });
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

/// Measured loss against steps per run with the `L(N, steps)` fit at each run's size.
fn size_steps_plot(trained: &[&RunSummary], f: &SizeStepsFit) -> LinePlot {
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
