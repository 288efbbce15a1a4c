//! The compute-optimal frontier of a scaling sweep: at each training-compute budget, the lowest
//! validation loss any run reached with that much compute, and which run (model size) it was.
//!
//! Each run's measured curve (training FLOPs, validation loss) is interpolated linearly in
//! log-log space between its own validation points and never extrapolated: a run only competes
//! at budgets it actually spent. Where the optimal size changes with the budget, a straight
//! line through `(log C, log N_opt)` gives the exponent of `N_opt ∝ C^k` (the compute-optimal
//! allocation; needs at least 3 distinct optimal sizes to be meaningful).

/// One run's measured curve.
#[derive(Debug, Clone)]
pub struct RunCurve {
    pub label: String,
    /// Model size (parameters).
    pub params: f64,
    /// `(training FLOPs, validation loss)`, any order.
    pub points: Vec<(f64, f64)>,
}

/// The best run at one compute budget.
#[derive(Debug, Clone, PartialEq)]
pub struct FrontierPoint {
    pub compute: f64,
    pub loss: f64,
    /// Index into the runs given to [`frontier`].
    pub run: usize,
}

/// A run's loss at `c` by log-log interpolation, `None` outside its measured range.
fn interpolate(points: &[(f64, f64)], c: f64) -> Option<f64> {
    let mut p: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite() && *x > 0.0 && *y > 0.0)
        .collect();
    p.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (first, last) = (p.first()?, p.last()?);
    if c < first.0 || c > last.0 {
        return None;
    }
    // Measured points are returned as measured.
    if let Some(&(_, y)) = p.iter().find(|(x, _)| *x == c) {
        return Some(y);
    }
    let k = p.windows(2).position(|w| c <= w[1].0)?;
    let ((x0, y0), (x1, y1)) = (p[k], p[k + 1]);
    if x1 == x0 {
        return Some(y0.min(y1));
    }
    let t = (c.ln() - x0.ln()) / (x1.ln() - x0.ln());
    Some((y0.ln() + t * (y1.ln() - y0.ln())).exp())
}

/// The frontier at `budgets` log-spaced points over the span of all runs' compute.
pub fn frontier(runs: &[RunCurve], budgets: usize) -> Vec<FrontierPoint> {
    let all = runs
        .iter()
        .flat_map(|r| r.points.iter().map(|p| p.0))
        .filter(|c| c.is_finite() && *c > 0.0);
    let (lo, hi) = all.fold((f64::INFINITY, 0.0f64), |(l, h), c| (l.min(c), h.max(c)));
    if !lo.is_finite() || budgets == 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    for i in 0..budgets {
        let c = if budgets == 1 || hi == lo {
            hi
        } else {
            lo * (hi / lo).powf(i as f64 / (budgets - 1) as f64)
        };
        let best = runs
            .iter()
            .enumerate()
            .filter_map(|(k, r)| interpolate(&r.points, c).map(|l| (k, l)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((run, loss)) = best {
            out.push(FrontierPoint {
                compute: c,
                loss,
                run,
            });
        }
    }
    out
}

/// Compute ranges where each run is optimal: `(run, first budget, last budget)` in budget order.
pub fn optimal_segments(points: &[FrontierPoint]) -> Vec<(usize, f64, f64)> {
    let mut out: Vec<(usize, f64, f64)> = Vec::new();
    for p in points {
        match out.last_mut() {
            Some(seg) if seg.0 == p.run => seg.2 = p.compute,
            _ => out.push((p.run, p.compute, p.compute)),
        }
    }
    out
}

/// The exponent `k` of `N_opt ∝ C^k` by least squares on the frontier points, when at least 3
/// distinct optimal sizes occur; `None` otherwise.
pub fn optimal_size_exponent(points: &[FrontierPoint], runs: &[RunCurve]) -> Option<f64> {
    let mut sizes: Vec<f64> = points.iter().map(|p| runs[p.run].params).collect();
    sizes.sort_by(f64::total_cmp);
    sizes.dedup();
    if sizes.len() < 3 {
        return None;
    }
    let xy: Vec<(f64, f64)> = points
        .iter()
        .map(|p| (p.compute.ln(), runs[p.run].params.ln()))
        .collect();
    let n = xy.len() as f64;
    let mx = xy.iter().map(|p| p.0).sum::<f64>() / n;
    let my = xy.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = xy.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = xy.iter().map(|p| (p.0 - mx).powi(2)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(label: &str, params: f64, pts: &[(f64, f64)]) -> RunCurve {
        RunCurve {
            label: label.into(),
            params,
            points: pts.to_vec(),
        }
    }

    #[test]
    fn interpolation_is_log_log_and_bounded() {
        let p = [(1.0, 1.0), (100.0, 0.01)];
        // Halfway in log C is halfway in log L.
        assert!((interpolate(&p, 10.0).unwrap() - 0.1).abs() < 1e-12);
        assert_eq!(interpolate(&p, 0.5), None);
        assert_eq!(interpolate(&p, 101.0), None);
        assert_eq!(interpolate(&p, 100.0), Some(0.01));
    }

    /// A small model is best at small budgets, a large one once it has had enough compute: the
    /// frontier switches from the first to the second where their curves cross, and never uses
    /// a run outside its measured range.
    #[test]
    fn small_then_large() {
        let small = run("small", 1e6, &[(1.0, 1.0), (10.0, 0.5), (100.0, 0.4)]);
        let large = run("large", 1e7, &[(10.0, 0.8), (100.0, 0.3), (1000.0, 0.2)]);
        let runs = vec![small, large];
        let f = frontier(&runs, 31);
        assert_eq!(f.first().unwrap().run, 0);
        assert_eq!(f.last().unwrap().run, 1);
        assert!((f.first().unwrap().compute - 1.0).abs() < 1e-12);
        assert!((f.last().unwrap().compute - 1000.0).abs() < 1e-9);
        let seg = optimal_segments(&f);
        assert_eq!(seg.len(), 2, "{seg:?}");
        // The crossing: small is 0.5 -> 0.4, large 0.8 -> 0.3 over [10, 100] in log-log; they
        // are equal where t = ln(0.8/0.5) / (ln(0.8/0.5) + ln(0.4/0.3)) of the decade.
        let t = (0.8f64 / 0.5).ln() / ((0.8f64 / 0.5).ln() + (0.4f64 / 0.3).ln());
        let cross = 10f64.powf(1.0 + t);
        assert!(seg[0].2 <= cross && cross <= seg[1].1, "{seg:?} {cross}");
        // The frontier is never above either run where that run is measured.
        for p in &f {
            for r in &runs {
                if let Some(l) = interpolate(&r.points, p.compute) {
                    assert!(p.loss <= l + 1e-12);
                }
            }
        }
        assert_eq!(optimal_size_exponent(&f, &runs), None);
    }

    #[test]
    fn optimal_size_grows_with_compute() {
        // Three sizes, each optimal over one decade: N_opt ∝ C^1 along the frontier.
        let runs = vec![
            run("1", 1.0, &[(1.0, 1.0), (10.0, 0.5), (100.0, 0.45)]),
            run("10", 10.0, &[(10.0, 0.9), (100.0, 0.3), (1000.0, 0.28)]),
            run("100", 100.0, &[(100.0, 0.8), (1000.0, 0.2)]),
        ];
        let f = frontier(&runs, 61);
        let k = optimal_size_exponent(&f, &runs).unwrap();
        assert!(k > 0.5 && k < 1.5, "{k}");
    }
}
