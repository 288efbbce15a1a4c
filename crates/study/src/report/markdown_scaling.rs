//! The scaling sections of `report.md`: the compute fit, the size-and-steps law and the
//! compute-optimal frontier, over one formulation's runs at a time ([`super::scaling`]). A fit
//! whose exponent the data do not constrain is written as such with the evidence, never as a
//! law with numbers.

use super::markdown::MIXED_LOSSES;
use super::{Report, Scaling};
use crate::fit::{distinct_count, PowerLawFit};
use crate::fit_bounds::Unconstrained;
use crate::fit_size_steps::SizeStepsFit;
use crate::frontier::{optimal_segments, optimal_size_exponent};
use std::fmt::Write as _;

const NO_COMPUTE_FIT: &str = "fewer than 4 distinct compute values with validation losses";

/// Appends the sections. With several formulations each gets its own fits, headed by its name.
pub(super) fn render(md: &mut String, r: &Report) {
    if r.formulations.len() <= 1 {
        match r.scaling.first() {
            Some(s) => render_one(md, s),
            None => {
                let _ = writeln!(md, "No compute fit: {NO_COMPUTE_FIT}.\n");
            }
        }
        return;
    }
    let _ = writeln!(
        md,
        "## Scaling, one formulation at a time\n\nNo law or frontier is fitted across the {} \
         formulations: {MIXED_LOSSES}. Each formulation's runs are fitted on their own, so each \
         formulation needs its own sweep of training compute (and of model size, for \
         `L(N, S)` and the frontier).\n",
        r.formulations.len()
    );
    let _ = writeln!(
        md,
        "Compute fits `L(C) = a (C / C0)^(-b) + c`, each over every validation point of one \
         formulation's runs:\n"
    );
    for name in &r.formulations {
        let line = match r.scaling.iter().find(|s| &s.formulation == name) {
            None => "no trained runs.".to_owned(),
            Some(Scaling { fit: None, .. }) => format!("no fit: {NO_COMPUTE_FIT}."),
            Some(Scaling { fit: Some(f), .. }) => compute_fit_text(f),
        };
        let _ = writeln!(md, "- `{name}`: {line}");
    }
    md.push('\n');
    for s in &r.scaling {
        let suffix = format!(": `{}`", s.formulation);
        if let Some(f) = &s.size_steps {
            render_size_steps(md, f, &format!("### Size and steps{suffix}"));
        }
        render_frontier(md, s, &format!("### Compute-optimal frontier{suffix}"));
    }
}

/// The one formulation's compute fit, size-and-steps law and frontier.
fn render_one(md: &mut String, s: &Scaling) {
    match &s.fit {
        None => {
            let _ = writeln!(md, "No compute fit: {NO_COMPUTE_FIT}.\n");
        }
        Some(f) => {
            let _ = writeln!(
                md,
                "Compute fit over every validation point of every run, `L(C) = a (C / C0)^(-b) \
                 + c`: {}\n",
                compute_fit_text(f)
            );
        }
    }
    if let Some(f) = &s.size_steps {
        render_size_steps(md, f, "## Size and steps");
    }
    render_frontier(md, s, "## Compute-optimal frontier");
}

/// The sentence that states what the data say about `L(C)`, ending with a full stop.
fn compute_fit_text(f: &PowerLawFit) -> String {
    if let Some(u) = f.unconstrained() {
        return not_constrained(&[u]);
    }
    format!(
        "C0 = {:.3e} FLOPs, a = {:.4} [{:.4}, {:.4}], b = {:.4} [{:.4}, {:.4}], c = {:.4} \
         [{:.4}, {:.4}] (95% percentile bootstrap, {} resamples; rms log residual {:.4}).",
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
    )
}

/// A fit reported as no result, with the evidence for each free exponent.
fn not_constrained(free: &[Unconstrained]) -> String {
    let evidence: Vec<String> = free.iter().map(|u| u.to_string()).collect();
    format!(
        "not constrained by the data, so no law is reported: {}.",
        evidence.join("; and ")
    )
}

fn render_size_steps(md: &mut String, f: &SizeStepsFit, heading: &str) {
    let _ = write!(
        md,
        "{heading}\n\n`L(N, S) = a (N / N0)^(-alpha) + b (S / S0)^(-beta) + c` over {} \
         validation points (N = trainable parameters, S = training steps): ",
        f.points
    );
    let free = f.unconstrained();
    if !free.is_empty() {
        let _ = writeln!(md, "{}\n", not_constrained(&free));
        return;
    }
    let l = &f.law;
    let _ = writeln!(
        md,
        "N0 = {:.4e}, S0 = {:.1}, a = {:.4} [{:.4}, {:.4}], alpha = {:.4} [{:.4}, {:.4}], b = \
         {:.4} [{:.4}, {:.4}], beta = {:.4} [{:.4}, {:.4}], c = {:.4} [{:.4}, {:.4}] (95% \
         percentile bootstrap, {} resamples; rms log residual {:.4}).\n",
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

fn render_frontier(md: &mut String, s: &Scaling, heading: &str) {
    if s.frontier.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "{heading}\n\nAt each training budget, the run with the lowest validation loss among \
         those that spent that budget (each run's curve interpolated log-log between its \
         validation points, never extrapolated):\n"
    );
    let _ = writeln!(
        md,
        "| optimal run | parameters | from FLOPs | to FLOPs | loss at start | loss at end |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    let segments = optimal_segments(&s.frontier);
    for &(run, from, to) in &segments {
        let at = |c: f64| {
            s.frontier
                .iter()
                .find(|p| p.compute == c)
                .map_or(f64::NAN, |p| p.loss)
        };
        let c = &s.frontier_curves[run];
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
    let sizes: Vec<f64> = segments
        .iter()
        .map(|seg| s.frontier_curves[seg.0].params)
        .collect();
    match optimal_size_exponent(&s.frontier, &s.frontier_curves) {
        // A line through a step function of a few sizes: the budgets are interpolated from
        // those runs' curves, not independent measurements, so no interval can be claimed.
        Some(k) => {
            let _ = writeln!(
                md,
                "Compute-optimal size along the frontier: `N_opt ∝ C^{k:.3}` (least squares in \
                 log-log over the {} frontier budgets, at which {} sizes are optimal; no \
                 interval: the budgets are interpolated from the optimal runs' curves, not \
                 independent measurements).\n",
                s.frontier.len(),
                distinct_count(&sizes)
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
