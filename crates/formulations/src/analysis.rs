//! Analysis: a table over native time of a_t, b_t, lambda, the timestep density and the
//! effective weight of the unified loss.

use crate::error::Result;
use crate::formulation::Formulation;
use crate::shift::Shift;
use crate::weighting::{effective_weight, eps_space_weight};
use std::io::Write;

/// One row of [`table`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TableRow {
    pub t: f64,
    pub a: f64,
    pub b: f64,
    pub lambda: f64,
    /// Density of the (shifted) training time at t.
    pub density: f64,
    /// Effective weight `w = -2 p(t) c(t) / lambda'(t)`.
    pub weight: f64,
}

/// Density of the training time at native time t under an optional shift (applied to t_eq).
pub fn shifted_density(formulation: Formulation, t: f64, shift: Option<Shift>) -> f64 {
    let path = formulation.path();
    let dist = formulation.timesteps();
    match shift {
        None => dist.density(t),
        Some(sh) => {
            // t -> t_eq -> unshift -> native; density transforms by |d t_unshifted / d t|.
            let t_eq = path.level(t).t_eq;
            let t_n = path.t_from_t_eq(sh.invert(t_eq));
            let h = 1e-6;
            let (lo, hi) = ((t - h).max(1e-12), (t + h).min(1.0 - 1e-12));
            let inv = |x: f64| path.t_from_t_eq(sh.invert(path.level(x).t_eq));
            let jac = (inv(hi) - inv(lo)) / (hi - lo);
            dist.density(t_n) * jac.abs()
        }
    }
}

/// `points` rows at the midpoints `t = (i + 0.5)/points` (endpoints are singular for most paths).
pub fn table(formulation: Formulation, points: usize, shift: Option<Shift>) -> Vec<TableRow> {
    let path = formulation.path();
    (0..points)
        .map(|i| {
            let t = (i as f64 + 0.5) / points as f64;
            let level = path.level(t);
            let density = shifted_density(formulation, t, shift);
            let c = eps_space_weight(
                formulation.parameterisation(),
                formulation.loss_weight(),
                &level,
            );
            TableRow {
                t,
                a: level.a,
                b: level.b,
                lambda: level.lambda,
                density,
                weight: effective_weight(density, c, path.dlambda_dt(t)),
            }
        })
        .collect()
}

/// Writes rows as CSV with header `t,a,b,lambda,density,weight`.
pub fn write_csv<W: Write>(rows: &[TableRow], mut out: W) -> Result<()> {
    writeln!(out, "t,a,b,lambda,density,weight")?;
    for r in rows {
        writeln!(
            out,
            "{},{},{},{},{},{}",
            r.t, r.a, r.b, r.lambda, r.density, r.weight
        )?;
    }
    Ok(())
}
