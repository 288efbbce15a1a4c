//! The post-hoc EMA part of `report.md` (`[eval] posthoc_stds`, crates/study/src/sweep_posthoc.rs):
//! each run's metric at every reconstructed EMA length with the pick, and the ranking with every
//! run at its own best length next to its rank at the fixed EMA.

use super::markdown_eval::run_label;
use super::Report;
use std::fmt::Write as _;

pub(super) fn render(md: &mut String, r: &Report) {
    let Some(p) = &r.results.posthoc else {
        return;
    };
    let label = |id: &str| run_label(r, id);
    let _ = writeln!(md, "### Post-hoc EMA: each run at its best EMA length\n");
    if !p.missing.is_empty() {
        let list: Vec<String> = p
            .missing
            .iter()
            .map(|(id, why)| format!("`{id}` ({why})"))
            .collect();
        let _ = writeln!(md, "Not evaluated yet: {}.\n", list.join(", "));
    }
    if p.table.is_empty() || p.metric.is_empty() {
        return;
    }
    let stds: Vec<f64> = p.table[0].1.iter().map(|(s, _)| *s).collect();
    let _ = writeln!(
        md,
        "Each run's power-function EMA (EDM2) reconstructed at its final step for each relative \
         std and evaluated like the selected checkpoints (weights `phema`); a run's best length \
         is the one with the best `{}` averaged over the sampler settings (ties: the shorter \
         EMA). Rows: `posthoc.csv`.\n",
        p.metric
    );
    let mut head = "| run | setting |".to_string();
    let mut rule = "|---|---|".to_string();
    for s in &stds {
        head.push_str(&format!(" std {s} |"));
        rule.push_str("---|");
    }
    let _ = writeln!(md, "{head} best |\n{rule}---|");
    for (run, scores) in &p.table {
        let pick = p.picks.iter().find(|(r, _)| r == run).map(|(_, s)| *s);
        let mut line = format!("| `{run}` | {} |", label(run));
        for (s, v) in scores {
            let cell = v.map_or("-".to_owned(), |v| format!("{v:.4}"));
            if Some(*s) == pick {
                line.push_str(&format!(" **{cell}** |"));
            } else {
                line.push_str(&format!(" {cell} |"));
            }
        }
        line.push_str(&pick.map_or(" - |".to_owned(), |s| format!(" {s} |")));
        let _ = writeln!(md, "{line}");
    }
    md.push('\n');
    let Some((spec, ranking)) = &p.ranking else {
        return;
    };
    let fixed = r.results.ranking.as_ref().map(|(_, f)| f);
    let _ = writeln!(
        md,
        "Ranking with each run at its best post-hoc EMA (`{spec}`, the same rule as above over \
         {} settings; per-setting ranks: `posthoc-ranking.csv`), and the run's place in the \
         fixed-EMA ranking:\n",
        ranking.settings.len()
    );
    let _ = writeln!(
        md,
        "| # | run | setting | best std | all | fixed-EMA place |\n|---|---|---|---|---|---|"
    );
    for (i, c) in ranking.rows.iter().enumerate() {
        let std = p
            .picks
            .iter()
            .find(|(r, _)| *r == c.candidate)
            .map_or("-".to_owned(), |(_, s)| s.to_string());
        let place = fixed
            .and_then(|f| f.rows.iter().position(|x| x.candidate == c.candidate))
            .map_or("-".to_owned(), |k| (k + 1).to_string());
        let _ = writeln!(
            md,
            "| {} | `{}` | {} | {std} | {:.2} | {place} |",
            i + 1,
            c.candidate,
            label(&c.candidate),
            c.mean
        );
    }
    md.push('\n');
}
