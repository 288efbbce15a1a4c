//! `report.md` from the [`Report`]: the runs ranked by validation loss within each formulation;
//! the scaling sections are [`super::markdown_scaling`], the evaluation section
//! [`super::markdown_eval`].

use super::{markdown_backbones, markdown_eval, markdown_scaling, Report, RunSummary};
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
             {MIXED_LOSSES}. Each run is ranked within its formulation; the sample metrics \
             rank the formulations.\n"
        );
    }
    render_runs(&mut md, runs, formulations > 1);
    if r.backbones.len() > 1 {
        markdown_backbones::render(&mut md, r);
    } else {
        markdown_scaling::render(&mut md, r);
    }
    markdown_eval::render(&mut md, r, sweep.eval.is_some());
    for p in &r.plots {
        let rel = p.strip_prefix(dir).unwrap_or(p);
        let _ = writeln!(md, "![{}]({})\n", rel.display(), rel.display());
    }
    md
}

/// The runs, best validation loss first; with `by_formulation`, grouped by formulation (in
/// name order) and ranked within each, as losses of different formulations do not compare.
fn render_runs(md: &mut String, runs: &[RunSummary], by_formulation: bool) {
    let loss = |r: &RunSummary| r.best.map_or(f64::INFINITY, |b| b.1);
    let mut order: Vec<&RunSummary> = runs.iter().collect();
    if by_formulation {
        order.sort_by(|a, b| {
            a.formulation
                .cmp(&b.formulation)
                .then(loss(a).total_cmp(&loss(b)))
        });
    } else {
        order.sort_by(|a, b| loss(a).total_cmp(&loss(b)));
    }
    let (lead, lead_rule) = if by_formulation {
        ("| formulation | rank in formulation |", "|---|---|")
    } else {
        ("| rank |", "|---|")
    };
    let _ = writeln!(
        md,
        "{lead} run | setting | parameters | best val loss | at step | last val loss | training FLOPs at best | status |"
    );
    let _ = writeln!(md, "{lead_rule}---|---|---|---|---|---|---|---|");
    let mut rank = 0;
    for (i, run) in order.iter().enumerate() {
        let starts_group = i == 0 || order[i - 1].formulation != run.formulation;
        rank = if by_formulation && starts_group {
            1
        } else {
            rank + 1
        };
        let lead = if by_formulation {
            format!("| `{}` | {rank} |", run.formulation)
        } else {
            format!("| {rank} |")
        };
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
            "{lead} `{}` | {} | {params} | {best} | {at} | {last} | {flops} | {} |",
            run.id, run.values, run.status
        );
    }
    md.push('\n');
}
