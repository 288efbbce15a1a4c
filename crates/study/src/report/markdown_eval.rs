//! The evaluation section of `report.md`: what was not evaluated, the paper's Pareto ranking,
//! the selection weights' metric values per run and setting, and the correlations of
//! validation loss with each sample metric.

use super::markdown::MIXED_LOSSES;
use super::Report;
use crate::sweep_results::{Correlation, SweepResults, SAMPLE_METRICS};
use std::fmt::Write as _;

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |x| format!("{x:.digits$}"))
}

/// Appends the section; `configured`: whether the sweep file has an `[eval]` section.
pub(super) fn render(md: &mut String, r: &Report, configured: bool) {
    let res = &r.results;
    if !configured {
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
    let _ = writeln!(
        md,
        "All rows: `results.csv` (the columns of `flowscale eval`, each run at its selected \
         checkpoint).\n"
    );
    render_substitutions(md, res);
    render_ranking(md, r);
    super::markdown_posthoc::render(md, r);
    if let Some(w) = &r.metric_weights {
        render_metric_table(md, res, w);
    }
    render_correlations(md, res);
}

/// What the evaluations did otherwise than the paper's protocol, before any number.
fn render_substitutions(md: &mut String, res: &SweepResults) {
    let _ = writeln!(
        md,
        "### Protocol substitutions
"
    );
    if res.substitutions.is_empty() && res.substitutions_unknown.is_empty() {
        let _ = writeln!(
            md,
            "None: every evaluation followed the paper's protocol (docs/protocol.md section 4).\n"
        );
        return;
    }
    if !res.substitutions.is_empty() {
        let _ = writeln!(
            md,
            "These numbers are not measured the paper's way in the items below \
             (docs/protocol.md section 4), so they compare with each other, not with the \
             paper's.\n\n| item | the paper | this sweep | runs |\n|---|---|---|---|"
        );
        for (s, runs) in &res.substitutions {
            let _ = writeln!(
                md,
                "| `{}` | {} | {} | {} |",
                s.item,
                s.paper,
                s.used,
                runs.len()
            );
        }
        md.push('\n');
    }
    if !res.substitutions_unknown.is_empty() {
        let _ = writeln!(
            md,
            "Not recorded (results written before flowscale recorded substitutions; re-run \
             their evaluation): {}.\n",
            res.substitutions_unknown
                .iter()
                .map(|id| format!("`{id}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

/// The axis values of run `id` (`key=value, ...`), or the ID when the report has no such run.
pub(super) fn run_label(r: &Report, id: &str) -> String {
    r.runs
        .iter()
        .find(|x| x.id == id)
        .map_or(id.to_owned(), |x| x.values.clone())
}

fn render_ranking(md: &mut String, r: &Report) {
    let Some((spec, ranking)) = &r.results.ranking else {
        return;
    };
    let label = |id: &str| run_label(r, id);
    let _ = writeln!(
        md,
        "### Ranking\n\nThe paper's rule: per setting (weights x sampler setting), \
         non-dominated sorting on `{spec}`; rank 1 = the Pareto front. Columns: the mean \
         rank over all {} settings and, as in Table 1 of the paper, over the settings of one \
         sampler setting each, when the sweep evaluated it (5 steps: `s5_cfg5`; 50 steps: \
         `s50_cfg5`; docs/protocol.md). Per-setting ranks: `ranking.csv`.\n",
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
    if let Some(c) = crate::paper_table1::compare_runs_with_paper(ranking, &r.results.rows) {
        let _ = writeln!(
            md,
            "Next to the paper's Table 1 (its mean ranks over 24 settings: 6 sampler settings x \
             EMA/raw x 2 datasets; this sweep's over its {} settings, so the columns are not on \
             one scale and only the orders compare):\n\n{}",
            ranking.settings.len(),
            c.to_markdown()
        );
    }
}

/// The selection weights' (`w`) metric values per run and sampler setting.
fn render_metric_table(md: &mut String, res: &SweepResults, w: &str) {
    let mut settings: Vec<&String> = res
        .correlations
        .iter()
        .filter(|c| c.weights == w)
        .map(|c| &c.setting)
        .collect();
    settings.sort();
    settings.dedup();
    for metric in SAMPLE_METRICS {
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
