//! The paper's Table 1 (its "all" column: each formulation's mean rank over the 24 settings,
//! docs/protocol.md section 3) and the comparison of a flowscale ranking with it: the two mean
//! ranks side by side and Spearman's rho over the formulations both have.

use crate::correlation::spearman;
use flowscale_eval::rank::{Ranking, Row};
use flowscale_formulations::Formulation;

/// The paper's overall ranking, best first (formulation, mean rank over 24 settings).
pub const PAPER_TABLE1: [(&str, f64); 16] = [
    ("rf/lognorm(0.00, 1.00)", 1.54),
    ("rf/lognorm(1.00, 0.60)", 2.08),
    ("rf/lognorm(0.50, 0.60)", 2.71),
    ("rf/mode(1.29)", 2.75),
    ("rf/lognorm(0.50, 1.00)", 2.83),
    ("eps/linear", 2.88),
    ("rf/mode(1.75)", 3.33),
    ("rf/cosmap", 4.13),
    ("edm(0.00, 0.60)", 5.63),
    ("rf", 5.67),
    ("v/linear", 6.83),
    ("edm(0.60, 1.20)", 9.00),
    ("v/cos", 9.17),
    ("edm/cos", 11.04),
    ("edm/rf", 13.04),
    ("edm(-1.20, 1.20)", 15.58),
];

/// One formulation in both rankings.
#[derive(Debug, Clone, PartialEq)]
pub struct PaperRow {
    pub formulation: String,
    pub paper: f64,
    pub ours: f64,
}

/// Our ranking next to the paper's.
#[derive(Debug, Clone, PartialEq)]
pub struct PaperComparison {
    /// The formulations both rankings have, in the paper's order.
    pub rows: Vec<PaperRow>,
    /// Candidates of ours the paper's Table 1 does not have.
    pub not_in_paper: Vec<String>,
    /// Spearman's rho between the two mean ranks (ties at their average rank); `None` under 3
    /// shared formulations or when one side is constant.
    pub spearman: Option<f64>,
}

/// Compares `ranking` (candidates named by formulation, as `flowscale rank` ranks by default)
/// with the paper's Table 1. Candidate names are matched after canonicalisation, so
/// `rf/lognorm(0, 1)` is `rf/lognorm(0.00, 1.00)`.
pub fn compare_with_paper(ranking: &Ranking) -> PaperComparison {
    let canonical = |name: &str| {
        Formulation::parse(name)
            .map(|f| f.to_string())
            .unwrap_or_else(|_| name.to_string())
    };
    let ours: Vec<(String, f64)> = ranking
        .rows
        .iter()
        .map(|r| (canonical(&r.candidate), r.mean))
        .collect();
    let rows: Vec<PaperRow> = PAPER_TABLE1
        .iter()
        .filter_map(|(name, paper)| {
            let (_, mean) = ours.iter().find(|(n, _)| n == name)?;
            Some(PaperRow {
                formulation: name.to_string(),
                paper: *paper,
                ours: *mean,
            })
        })
        .collect();
    let not_in_paper = ours
        .iter()
        .filter(|(n, _)| !PAPER_TABLE1.iter().any(|(p, _)| p == n))
        .map(|(n, _)| n.clone())
        .collect();
    let (p, o): (Vec<f64>, Vec<f64>) = rows.iter().map(|r| (r.paper, r.ours)).unzip();
    PaperComparison {
        spearman: spearman(&p, &o),
        rows,
        not_in_paper,
    }
}

/// [`compare_with_paper`] for a ranking of runs (a sweep report's): each run is named by the
/// `formulation` column of its result rows. `None` unless every ranked run has one and no two
/// share it (a sweep over depths or seeds is not a formulation ranking), or when none of the
/// formulations is in the paper's table.
pub fn compare_runs_with_paper(ranking: &Ranking, rows: &[Row]) -> Option<PaperComparison> {
    let formulation_of = |run: &str| {
        rows.iter()
            .find(|r| r.get("run").is_some_and(|v| v == run))
            .and_then(|r| r.get("formulation"))
            .cloned()
    };
    let mut named = ranking.clone();
    for c in &mut named.rows {
        c.candidate = formulation_of(&c.candidate)?;
    }
    let mut names: Vec<&String> = named.rows.iter().map(|c| &c.candidate).collect();
    names.sort();
    names.dedup();
    if names.len() != named.rows.len() {
        return None;
    }
    let comparison = compare_with_paper(&named);
    (!comparison.rows.is_empty()).then_some(comparison)
}

impl PaperComparison {
    /// A Markdown table (paper's order) with the rho below it.
    pub fn to_markdown(&self) -> String {
        let mut s = String::from("| formulation | paper (Table 1) | flowscale |\n|---|---|---|\n");
        for r in &self.rows {
            s.push_str(&format!(
                "| {} | {:.2} | {:.2} |\n",
                r.formulation, r.paper, r.ours
            ));
        }
        match self.spearman {
            Some(rho) => s.push_str(&format!(
                "\nSpearman's rho over {} formulations: {rho:.3}\n",
                self.rows.len()
            )),
            None => s.push_str(&format!(
                "\nSpearman's rho: undefined ({} shared formulations)\n",
                self.rows.len()
            )),
        }
        if !self.not_in_paper.is_empty() {
            s.push_str(&format!(
                "Not in the paper's Table 1: {}\n",
                self.not_in_paper.join(", ")
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowscale_eval::rank::RankedCandidate;

    fn ranking(rows: &[(&str, f64)]) -> Ranking {
        Ranking {
            settings: vec!["s".into()],
            step_subsets: vec![],
            rows: rows
                .iter()
                .map(|(c, m)| RankedCandidate {
                    candidate: c.to_string(),
                    ranks: vec![1],
                    mean: *m,
                    subset_means: vec![],
                })
                .collect(),
        }
    }

    #[test]
    fn the_table_is_the_registrys_canonical_names_in_the_papers_order() {
        for w in PAPER_TABLE1.windows(2) {
            assert!(w[0].1 < w[1].1, "{:?}", w);
        }
        for (name, _) in PAPER_TABLE1 {
            assert_eq!(Formulation::parse(name).unwrap().to_string(), name);
        }
    }

    /// Hand-worked: four shared formulations, ours in the order (rf 1, eps 2, lognorm 3,
    /// v/cos 4) against the paper's (lognorm 1.54 < eps 2.88 < rf 5.67 < v/cos 9.17): rank
    /// differences d = (2, 0, -2, 0) for (lognorm, eps, rf, v/cos), rho = 1 - 6 * 8 / (4 * 15)
    /// = 0.2. A non-canonical spelling matches; a candidate the paper lacks is listed.
    #[test]
    fn hand_worked_rho() {
        let c = compare_with_paper(&ranking(&[
            ("rf", 1.0),
            ("eps/linear", 2.0),
            ("rf/lognorm(0, 1)", 3.0),
            ("v/cos", 4.0),
            ("rf/lognorm(-1.00, 0.20)", 5.0),
        ]));
        assert_eq!(c.rows.len(), 4);
        assert_eq!(c.rows[0].formulation, "rf/lognorm(0.00, 1.00)");
        assert_eq!(c.rows[0].ours, 3.0);
        assert!(
            (c.spearman.unwrap() - 0.2).abs() < 1e-12,
            "{:?}",
            c.spearman
        );
        assert_eq!(c.not_in_paper, vec!["rf/lognorm(-1.00, 0.20)".to_string()]);
        // The paper's own ranking correlates perfectly with itself.
        let c = compare_with_paper(&ranking(&PAPER_TABLE1));
        assert_eq!(c.spearman, Some(1.0));
        assert!(c.to_markdown().contains("over 16 formulations: 1.000"));
        // A sweep report's ranking of runs, named through their rows' formulation column.
        let runs = ranking(&[("r1", 1.0), ("r2", 2.0), ("r3", 3.0)]);
        let row = |run: &str, f: &str| -> Row {
            [("run", run), ("formulation", f)]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let rows = vec![
            row("r1", "rf"),
            row("r2", "eps/linear"),
            row("r3", "rf/lognorm(0.00, 1.00)"),
        ];
        let c = compare_runs_with_paper(&runs, &rows).unwrap();
        assert_eq!(c.rows.len(), 3);
        // Ours rf < eps < lognorm, the paper's exactly reversed.
        assert_eq!(c.spearman, Some(-1.0));
        // Two runs of one formulation (a depth sweep) or a run without rows: no comparison.
        let twice = vec![row("r1", "rf"), row("r2", "rf"), row("r3", "v/cos")];
        assert!(compare_runs_with_paper(&runs, &twice).is_none());
        assert!(compare_runs_with_paper(&runs, &rows[..2]).is_none());
        // Fewer than 3 shared: undefined, said so.
        let c = compare_with_paper(&ranking(&[("rf", 1.0), ("v/cos", 2.0)]));
        assert_eq!(c.spearman, None);
        assert!(c.to_markdown().contains("undefined (2 shared"));
    }
}
