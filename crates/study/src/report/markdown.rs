//! `report.md` from the [`Report`]: the runs ranked by validation loss, the compute fit, the
//! size-and-steps law and the frontier; the evaluation section is [`super::markdown_eval`].

use super::{markdown_eval, Report, RunSummary};
use crate::frontier::{optimal_segments, optimal_size_exponent};
use crate::sweep::Sweep;
use std::fmt::Write as _;
use std::path::Path;

/// Why validation losses of several formulations do not compare.
pub(super) const MIXED_LOSSES: &str = "each run's validation loss is its own formulation's \
     training loss (its target and weighting), so the losses of different formulations are on \
     different scales";

/// The Markdown of the whole report; plot links are relative to `dir` (where it is written).
pub(super) fn render(r: &Report, sweep: &Sweep, dir: &Path) -> String {
    let runs = &r.runs;
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
    let formulations = r.formulations.len();
    if formulations > 1 {
        let _ = writeln!(
            md,
            "The {formulations} formulations are not ranked against each other by this table: \
             {MIXED_LOSSES}. The sample metrics below rank them.\n"
        );
    }
    render_runs(&mut md, runs);
    render_compute_fit(&mut md, r);
    render_scaling(&mut md, r);
    markdown_eval::render(&mut md, r, sweep.eval.is_some());
    for p in &r.plots {
        let rel = p.strip_prefix(dir).unwrap_or(p);
        let _ = writeln!(md, "![{}]({})\n", rel.display(), rel.display());
    }
    md
}

/// The runs, best validation loss first.
fn render_runs(md: &mut String, runs: &[RunSummary]) {
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
}

fn render_compute_fit(md: &mut String, r: &Report) {
    let Some(f) = &r.fit else {
        let _ = writeln!(
            md,
            "No compute fit: fewer than 4 distinct compute values with validation losses.\n"
        );
        return;
    };
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

fn render_scaling(md: &mut String, r: &Report) {
    if let Some(f) = &r.size_steps {
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
    for (run, from, to) in optimal_segments(&r.frontier) {
        let at = |c: f64| {
            r.frontier
                .iter()
                .find(|p| p.compute == c)
                .map_or(f64::NAN, |p| p.loss)
        };
        let c = &r.frontier_curves[run];
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
    match optimal_size_exponent(&r.frontier, &r.frontier_curves) {
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
