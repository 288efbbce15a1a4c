//! How the sweep's formulations differ, when it has several: their training-time densities on
//! one common time axis, and their effective loss weights against log-SNR.

use crate::error::Result;
use crate::plot::{save, LinePlot, Series, SeriesStyle};
use flowscale_formulations::Formulation;
use std::path::{Path, PathBuf};

/// A formulation's training-time density moved from its native time onto the common axis
/// `t_eq = sigmoid(-lambda / 2)` (rectified-flow time of equal log-SNR):
/// `p_eq(t_eq) = p(t) / (dt_eq / dt)`, the derivative by central differences over the table.
/// For the rf family `t_eq = t` and nothing changes; eps/v/EDM densities become comparable.
fn density_in_t_eq(rows: &[flowscale_formulations::TableRow]) -> Vec<(f64, f64)> {
    let t_eq = |lambda: f64| 1.0 / (1.0 + (lambda / 2.0).exp());
    rows.windows(3)
        .filter_map(|w| {
            let slope = (t_eq(w[2].lambda) - t_eq(w[0].lambda)) / (w[2].t - w[0].t);
            let p = w[1].density / slope;
            (slope.is_finite() && slope > 0.0 && p.is_finite()).then(|| (t_eq(w[1].lambda), p))
        })
        .collect()
}

/// Draws both plots into `dir` when `names` (sorted, each once) holds 2+ formulations.
pub(super) fn draw(names: &[String], dir: &Path) -> Result<Vec<PathBuf>> {
    if names.len() < 2 {
        return Ok(Vec::new());
    }
    let mut density = Vec::new();
    let mut weight = Vec::new();
    for name in names {
        let Ok(f) = Formulation::parse(name) else {
            continue;
        };
        let rows = flowscale_formulations::table(f, 201, None);
        let interior = rows.iter().filter(|r| r.t > 0.0 && r.t < 1.0);
        density.push(Series {
            label: name.clone(),
            points: density_in_t_eq(&rows),
            style: SeriesStyle::Measured,
        });
        weight.push(Series {
            label: name.clone(),
            points: interior
                .filter(|r| r.weight.is_finite() && r.weight > 0.0)
                .map(|r| (r.lambda, r.weight))
                .collect(),
            style: SeriesStyle::Measured,
        });
    }
    // (title, x label, y label, log y, series, file): the two views of each formulation.
    let plots = [
        (
            "timestep density p(t)",
            "t (rectified-flow time of equal log-SNR)",
            "density",
            false,
            density,
            "formulation-density",
        ),
        (
            "effective loss weight w(lambda)",
            "log-SNR lambda",
            "w(lambda)",
            true,
            weight,
            "formulation-weight",
        ),
    ];
    let mut written = Vec::new();
    for (title, x_label, y_label, log_y, series, file) in plots {
        let plot = LinePlot {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            log_x: false,
            log_y,
            series,
        };
        written.push(save(&plot, &dir.join(file))?.0);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(name: &str) -> Vec<(f64, f64)> {
        let f = Formulation::parse(name).unwrap();
        density_in_t_eq(&flowscale_formulations::table(f, 2001, None))
    }

    /// Trapezoid integral of the density over t_eq.
    fn mass(points: &[(f64, f64)]) -> f64 {
        points
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0)
            .sum()
    }

    #[test]
    fn densities_move_onto_equal_log_snr_time() {
        // rf: t_eq = t, the density is unchanged (1 for uniform t).
        for (t, p) in curve("rf") {
            assert!((p - 1.0).abs() < 1e-6, "rf at {t}: {p}");
        }
        // v/cos samples t uniformly, which is not uniform in t_eq; the moved density still
        // integrates to 1 (less the tails outside the table) and peaks in the middle.
        let v = curve("v/cos");
        assert!((mass(&v) - 1.0).abs() < 5e-3, "{}", mass(&v));
        let at = |pts: &[(f64, f64)], x: f64| {
            pts.iter()
                .min_by(|a, b| (a.0 - x).abs().total_cmp(&(b.0 - x).abs()))
                .unwrap()
                .1
        };
        assert!(
            at(&v, 0.5) > 1.2 * at(&v, 0.1),
            "{} {}",
            at(&v, 0.5),
            at(&v, 0.1)
        );
        // rf/lognorm(0, 1): t_eq = t, the logit-normal density, peak 1.59 at 0.5.
        let l = curve("rf/lognorm(0.00, 1.00)");
        assert!((at(&l, 0.5) - 1.596).abs() < 0.01, "{}", at(&l, 0.5));
    }
}
