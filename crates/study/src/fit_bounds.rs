//! Whether a fitted exponent is constrained by the data. The fits search their exponents on a
//! bounded range ([`crate::fit`], [`crate::fit_size_steps`]); when the best exponent sits on an
//! end of that range, the optimum lies outside it (or the score is flat), and when the bootstrap
//! interval reaches an end, resamples of the same data land anywhere in the range. And an
//! exponent is only measured through its term: when the bootstrap interval of that term's
//! amplitude includes 0, the data are consistent with no change at all and any exponent fits.
//! In each case the number is an artefact of the search, not a measurement, and is reported so.

use std::fmt;

/// How close (relative, `|ln(x / bound)|`) a value must be to a search bound to count as on it.
/// The scans refine inside a grid cell, so a value pushed against a bound ends within
/// floating-point noise of it; 1% also catches an optimum just inside the bound, whose
/// interval cannot be trusted to stop short of it.
const ON_BOUND: f64 = 0.01;

/// An exponent the data do not pin down, with the evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Unconstrained {
    /// The parameter's name in the law (`b`, `alpha`, `beta`).
    pub parameter: &'static str,
    /// The point estimate.
    pub value: f64,
    /// Its 95% bootstrap interval.
    pub ci: (f64, f64),
    pub reason: Reason,
}

/// Why an exponent is not constrained.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    /// The estimate or the interval reaches `reached` (one or both ends of `range`, the
    /// searched range).
    SearchBound {
        range: (f64, f64),
        reached: Vec<f64>,
    },
    /// The 95% interval of the amplitude (named) of the exponent's term includes 0.
    NoTrend {
        amplitude: &'static str,
        ci: (f64, f64),
    },
}

fn on(x: f64, bound: f64) -> bool {
    (x / bound).ln().abs() < ON_BOUND
}

/// Whether an amplitude's interval includes 0, or presses against it: `L(N, S)` rejects
/// negative amplitudes, so a term its resamples drop shows as a lower end many orders of
/// magnitude below the upper one rather than as a sign change.
fn reaches_zero(ci: (f64, f64)) -> bool {
    ci.0 <= 1e-6 * ci.1.abs()
}

/// An exponent with its interval, the searched range and its term's amplitude interval.
pub(crate) struct Exponent {
    pub name: &'static str,
    pub value: f64,
    pub ci: (f64, f64),
    pub range: (f64, f64),
    pub amplitude: &'static str,
    pub amplitude_ci: (f64, f64),
}

/// `Some` when the exponent is not constrained: the search bound first (the sharper evidence),
/// else an amplitude interval that includes 0.
pub(crate) fn check(e: Exponent) -> Option<Unconstrained> {
    let (lo, hi) = e.range;
    let mut reached = Vec::new();
    if on(e.value, lo) || on(e.ci.0, lo) {
        reached.push(lo);
    }
    if on(e.value, hi) || on(e.ci.1, hi) {
        reached.push(hi);
    }
    let reason = if !reached.is_empty() {
        Reason::SearchBound {
            range: e.range,
            reached,
        }
    } else if reaches_zero(e.amplitude_ci) {
        Reason::NoTrend {
            amplitude: e.amplitude,
            ci: e.amplitude_ci,
        }
    } else {
        return None;
    };
    Some(Unconstrained {
        parameter: e.name,
        value: e.value,
        ci: e.ci,
        reason,
    })
}

impl fmt::Display for Unconstrained {
    /// Worded so it never reads as a result: no `name = value [lo, hi]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the exponent {} (estimate {:.4}, 95% bootstrap interval {:.4} to {:.4}) ",
            self.parameter, self.value, self.ci.0, self.ci.1
        )?;
        match &self.reason {
            Reason::SearchBound { range, reached } => {
                let ends: Vec<String> = reached.iter().map(|b| b.to_string()).collect();
                write!(
                    f,
                    "reaches the search bound{} {} of the searched range {} to {}",
                    if ends.len() > 1 { "s" } else { "" },
                    ends.join(" and "),
                    range.0,
                    range.1
                )
            }
            Reason::NoTrend { amplitude, ci } => write!(
                f,
                "belongs to a term whose amplitude {amplitude} has a 95% bootstrap interval \
                 ({:.3e} to {:.3e}) that includes 0: the data are consistent with no change \
                 along it",
                ci.0, ci.1
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exponent(value: f64, ci: (f64, f64), amplitude_ci: (f64, f64)) -> Exponent {
        Exponent {
            name: "beta",
            value,
            ci,
            range: (1e-3, 4.0),
            amplitude: "b",
            amplitude_ci,
        }
    }

    #[test]
    fn an_interior_exponent_of_a_real_term_is_constrained() {
        assert_eq!(check(exponent(0.3, (0.25, 0.36), (0.5, 0.8))), None);
        // Near, but clearly off, a bound (2% above the lower one).
        assert_eq!(check(exponent(0.3, (1.02e-3, 0.9), (0.5, 0.8))), None);
    }

    #[test]
    fn an_estimate_or_interval_on_a_bound_is_flagged_with_that_bound() {
        let reached = |e| match check(e).unwrap().reason {
            Reason::SearchBound { reached, .. } => reached,
            other => panic!("{other:?}"),
        };
        assert_eq!(reached(exponent(1e-3, (1e-3, 0.2), (0.5, 0.8))), [1e-3]);
        assert_eq!(reached(exponent(0.8, (0.3, 3.999), (0.5, 0.8))), [4.0]);
        assert_eq!(reached(exponent(0.5, (1e-3, 4.0), (0.5, 0.8))), [1e-3, 4.0]);
        let text = check(exponent(0.5, (1e-3, 4.0), (0.5, 0.8)))
            .unwrap()
            .to_string();
        assert!(text.contains("beta (estimate 0.5000"), "{text}");
        assert!(text.contains("bounds 0.001 and 4 "), "{text}");
        assert!(!text.contains("beta = "), "{text}");
    }

    #[test]
    fn an_amplitude_interval_through_zero_frees_its_exponent() {
        let u = check(exponent(0.3, (0.1, 1.7), (-1e-3, 2e-3))).unwrap();
        assert!(matches!(u.reason, Reason::NoTrend { amplitude: "b", .. }));
        assert!(u.to_string().contains("includes 0"), "{u}");
        // A non-negative amplitude pressed against 0 by some resamples.
        assert!(check(exponent(0.3, (0.1, 1.7), (1e-12, 0.4))).is_some());
        assert!(check(exponent(0.3, (0.1, 1.7), (1e-3, 0.4))).is_none());
    }
}
