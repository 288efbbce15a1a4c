//! The scaling analysis of a sweep, one formulation at a time: the compute fit `L(C)`, the
//! `L(N, steps)` fit and the compute-optimal frontier. A run's validation loss is its own
//! formulation's training loss (target and weighting), so losses of different formulations are
//! on different scales and a law or a frontier across them would compare units, not runs.

use super::RunSummary;
use crate::fit::{distinct_count, fit_power_law, PowerLawFit};
use crate::fit_size_steps::{fit_size_steps, SizeStepsFit};
use crate::frontier::{frontier, FrontierPoint, RunCurve};

/// What one formulation's trained runs measure.
#[derive(Debug, Clone)]
pub struct Scaling {
    pub formulation: String,
    /// `(training FLOPs, validation loss, index into Report::runs)`: the points of `fit`.
    pub compute_points: Vec<(f64, f64, usize)>,
    /// `L(C)` over every validation point of these runs (at least 4 distinct compute values).
    pub fit: Option<PowerLawFit>,
    /// `L(N, steps)` when these runs have at least 3 model sizes.
    pub size_steps: Option<SizeStepsFit>,
    /// These runs with both a parameter count and FLOPs per step, in sweep order, as
    /// loss-against-compute curves: what the frontier is found over.
    pub frontier_curves: Vec<RunCurve>,
    /// The compute-optimal frontier when these runs have 2+ sizes. `FrontierPoint::run`
    /// indexes `frontier_curves`.
    pub frontier: Vec<FrontierPoint>,
}

/// One [`Scaling`] per formulation that has trained runs, in formulation-name order.
pub(super) fn per_formulation(runs: &[RunSummary]) -> Vec<Scaling> {
    let mut names: Vec<&str> = runs
        .iter()
        .filter(|r| r.best.is_some())
        .map(|r| r.formulation.as_str())
        .collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let members: Vec<(usize, &RunSummary)> = runs
                .iter()
                .enumerate()
                .filter(|(_, r)| r.best.is_some() && r.formulation == name)
                .collect();
            scaling(name, &members)
        })
        .collect()
}

/// The analysis of `members` (index into the report's runs, run), all of one formulation.
fn scaling(formulation: &str, members: &[(usize, &RunSummary)]) -> Scaling {
    let compute_points = compute_points(members);
    let fit = fit_power_law(
        &compute_points.iter().map(|p| p.0).collect::<Vec<_>>(),
        &compute_points.iter().map(|p| p.1).collect::<Vec<_>>(),
        1000,
        0,
    );
    let frontier_curves = frontier_curves(members);
    let sizes: Vec<f64> = frontier_curves.iter().map(|c| c.params).collect();
    let frontier = if distinct_count(&sizes) >= 2 {
        frontier(&frontier_curves, 60)
    } else {
        Vec::new()
    };
    Scaling {
        formulation: formulation.to_owned(),
        compute_points,
        fit,
        size_steps: size_steps_fit(members),
        frontier_curves,
        frontier,
    }
}

/// Every (training FLOPs, validation loss) point of every run, for the compute fit.
fn compute_points(members: &[(usize, &RunSummary)]) -> Vec<(f64, f64, usize)> {
    let mut pts = Vec::new();
    for &(k, r) in members {
        let (Some(points), Some(f)) = (r.fit_points(), r.flops_per_step) else {
            continue;
        };
        pts.extend(points.map(|(s, l)| (s as f64 * f, l, k)));
    }
    pts
}

/// `L(N, steps)` over every validation point (step > 0) of every run with a known size.
fn size_steps_fit(members: &[(usize, &RunSummary)]) -> Option<SizeStepsFit> {
    let (mut n, mut s, mut y) = (Vec::new(), Vec::new(), Vec::new());
    for (_, r) in members {
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

fn frontier_curves(members: &[(usize, &RunSummary)]) -> Vec<RunCurve> {
    members
        .iter()
        .filter_map(|(_, r)| {
            let (p, f, points) = (r.params?, r.flops_per_step?, r.fit_points()?);
            Some(RunCurve {
                label: r.values.clone(),
                params: p,
                points: points.map(|(s, l)| (s as f64 * f, l)).collect(),
            })
        })
        .collect()
}
