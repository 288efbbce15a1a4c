//! The architecture comparison's plot (paper Fig. 4): every run's validation loss against its
//! training compute, one curve per run and no fit. Backbones at matched parameters differ in
//! FLOPs per step, so the same curves against steps (the validation plot) and against FLOPs
//! can order them differently; the report shows both.

use super::RunSummary;
use crate::plot::{LinePlot, Series, SeriesStyle};

pub(super) fn loss_vs_flops(trained: &[&RunSummary]) -> LinePlot {
    LinePlot {
        title: "validation loss vs training compute, by backbone".into(),
        x_label: "training FLOPs (3 x forward, matrix products)".into(),
        y_label: "validation loss (mean over t < 1)".into(),
        log_x: true,
        log_y: false,
        series: trained
            .iter()
            .filter_map(|r| {
                let (points, f) = (r.fit_points()?, r.flops_per_step?);
                Some(Series {
                    label: r.values.clone(),
                    points: points.map(|(s, l)| (s as f64 * f, l)).collect(),
                    style: SeriesStyle::Measured,
                })
            })
            .collect(),
    }
}
