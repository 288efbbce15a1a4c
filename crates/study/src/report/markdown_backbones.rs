//! The architecture section of `report.md` (a sweep over `model.backbone`, paper Sec. 5.2.3 and
//! Fig. 4): each backbone's size, compute and validation loss at its best checkpoint, at its
//! last, and at the largest training compute every run reached (the curves compared at equal
//! FLOPs, read off each run's validation points by linear interpolation in log FLOPs), with
//! the paper's ordering beside it. All runs share the formulation, so their losses compare.

use super::{Report, RunSummary};
use std::fmt::Write as _;

/// The paper's finding (Fig. 4), for the reader to compare with.
const PAPER_ORDER: &str = "MMDiT-3 ≈ MMDiT < CrossDiT < UViT < DiT in validation loss \
     (CrossDiT and UViT close; UViT learns fastest at first), MMDiT-3 gaining little over MMDiT";

pub(super) fn render(md: &mut String, r: &Report) {
    let trained: Vec<&RunSummary> = r.trained().collect();
    let _ = writeln!(
        md,
        "## Architectures ({} backbones)\n\nNo scaling law is fitted across architectures. \
         The paper (Fig. 4): {PAPER_ORDER}.\n",
        r.backbones.len()
    );
    if r.formulations.len() > 1 {
        let _ = writeln!(
            md,
            "The runs use {} formulations, so their losses do not compare; run the architecture \
             comparison with one formulation.\n",
            r.formulations.len()
        );
        return;
    }
    let common = common_compute(&trained);
    let _ = writeln!(
        md,
        "| rank (loss at equal FLOPs) | backbone | run | parameters | FLOPs per step | best val \
         loss | at step | last val loss | val loss at {} FLOPs |",
        common.map_or("-".into(), |c| format!("{c:.3e}"))
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
    let mut rows: Vec<(&RunSummary, Option<f64>)> = trained
        .iter()
        .map(|r| (*r, common.and_then(|c| loss_at_compute(r, c))))
        .collect();
    rows.sort_by(|a, b| {
        let key = |x: &(&RunSummary, Option<f64>)| x.1.unwrap_or(f64::INFINITY);
        key(a).total_cmp(&key(b))
    });
    for (i, (run, at)) in rows.iter().enumerate() {
        let _ = writeln!(
            md,
            "| {} | {} | `{}` | {} | {} | {} | {} | {} | {} |",
            i + 1,
            run.backbone,
            run.id,
            run.params.map_or("-".into(), |p| format!("{p:.0}")),
            run.flops_per_step
                .map_or("-".into(), |f| format!("{f:.3e}")),
            run.best.map_or("-".into(), |b| format!("{:.5}", b.1)),
            run.best.map_or("-".into(), |b| b.0.to_string()),
            run.last.map_or("-".into(), |b| format!("{:.5}", b.1)),
            at.map_or("-".into(), |l| format!("{l:.5}")),
        );
    }
    md.push('\n');
}

/// The largest training compute every run's validation points reach: the smallest of the
/// runs' last points.
fn common_compute(runs: &[&RunSummary]) -> Option<f64> {
    runs.iter()
        .map(|r| {
            let f = r.flops_per_step?;
            r.fit_points()?.map(|(s, _)| s as f64 * f).reduce(f64::max)
        })
        .collect::<Option<Vec<f64>>>()?
        .into_iter()
        .reduce(f64::min)
}

/// A run's validation loss at `compute` FLOPs, interpolated linearly in log compute between
/// its validation points; `None` outside their range.
fn loss_at_compute(r: &RunSummary, compute: f64) -> Option<f64> {
    let f = r.flops_per_step?;
    let pts: Vec<(f64, f64)> = r.fit_points()?.map(|(s, l)| (s as f64 * f, l)).collect();
    pts.windows(2)
        .find_map(|w| {
            let ((c0, l0), (c1, l1)) = (w[0], w[1]);
            if compute < c0 || compute > c1 {
                return None;
            }
            if c1 == c0 {
                return Some(l1);
            }
            let u = (compute.ln() - c0.ln()) / (c1.ln() - c0.ln());
            Some(l0 + u * (l1 - l0))
        })
        .or_else(|| pts.first().filter(|p| p.0 == compute).map(|p| p.1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::curves::RunCurves;

    fn run(backbone: &str, flops: f64, points: &[(u64, f64)]) -> RunSummary {
        let mut curves = RunCurves::default();
        curves.validation.insert("ema0.999".into(), points.to_vec());
        RunSummary {
            id: backbone.into(),
            values: format!("model.backbone=\"{backbone}\""),
            status: "done".into(),
            formulation: "rf".into(),
            backbone: backbone.into(),
            best: points.iter().copied().min_by(|a, b| a.1.total_cmp(&b.1)),
            last: points.last().copied(),
            flops_per_step: Some(flops),
            params: Some(1e6),
            curves,
        }
    }

    #[test]
    fn losses_compare_at_the_compute_every_run_reached() {
        // DiT costs twice MMDiT's FLOPs per step: at 200 steps it has spent what MMDiT spends
        // in 400, so the comparison is at 400 MMDiT steps = 200 DiT steps.
        let mmdit = run("mmdit", 1.0, &[(100, 0.9), (200, 0.8), (400, 0.6)]);
        let dit = run("dit", 2.0, &[(100, 0.85), (200, 0.7)]);
        let runs = [&mmdit, &dit];
        let c = common_compute(&runs).unwrap();
        assert_eq!(c, 400.0);
        assert!((loss_at_compute(&mmdit, c).unwrap() - 0.6).abs() < 1e-12);
        assert!((loss_at_compute(&dit, c).unwrap() - 0.7).abs() < 1e-12);
        // Halfway in log compute between 200 and 400 FLOPs (step 200 and 400 of MMDiT).
        let mid = (200.0f64 * 400.0).sqrt();
        assert!((loss_at_compute(&mmdit, mid).unwrap() - 0.7).abs() < 1e-12);
        assert!(loss_at_compute(&mmdit, 1000.0).is_none());
    }
}
