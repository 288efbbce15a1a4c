//! Non-dominated sorting (the SD3 paper's ranking, docs/protocol.md section 4): within one setting,
//! rank 1 is the Pareto front of all candidates, rank 2 the front of what remains, and so on.
//!
//! `a` dominates `b` when `a` is at least as good on every metric and strictly better on one.
//! Candidates with equal metric vectors dominate neither each other and share a front.

use crate::error::{EvalError, Result};

/// Whether larger or smaller values of a metric are better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Max,
    Min,
}

/// A metric to rank on: one name, or alternatives of which each setting uses the first that its
/// rows have (`class_accuracy|prompt_class_accuracy`: one prompt-adherence score across a
/// class-conditional and a text-to-image dataset, as the paper's CLIP score spans its two).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricSpec {
    /// As written, e.g. `fid` or `class_accuracy|prompt_class_accuracy`.
    pub name: String,
    /// The metric names it accepts, in order of preference (one for a plain name).
    pub alternatives: Vec<String>,
    pub direction: Direction,
}

/// Parses `clip:max,fid:min`; `a|b:max` is one metric with alternatives ([`MetricSpec`]).
pub fn parse_metrics(spec: &str) -> Result<Vec<MetricSpec>> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, dir) = part.rsplit_once(':').ok_or_else(|| {
            EvalError::Invalid(format!("metric `{part}`: expected NAME:max or NAME:min"))
        })?;
        let direction = match dir {
            "max" => Direction::Max,
            "min" => Direction::Min,
            other => {
                return Err(EvalError::Invalid(format!(
                    "metric `{part}`: direction `{other}` is not max or min"
                )))
            }
        };
        let alternatives: Vec<String> = name.split('|').map(|a| a.trim().to_string()).collect();
        if alternatives.iter().any(String::is_empty) {
            return Err(EvalError::Invalid(format!(
                "metric `{part}`: an empty name (alternatives are NAME|NAME:max)"
            )));
        }
        out.push(MetricSpec {
            name: alternatives.join("|"),
            alternatives,
            direction,
        });
    }
    if out.is_empty() {
        return Err(EvalError::Invalid("no metrics to rank on".into()));
    }
    Ok(out)
}

/// Whether `a` dominates `b` (values in metric order).
pub fn dominates(a: &[f64], b: &[f64], dirs: &[Direction]) -> bool {
    let mut strictly = false;
    for ((x, y), d) in a.iter().zip(b).zip(dirs) {
        let (better, worse) = match d {
            Direction::Max => (x > y, x < y),
            Direction::Min => (x < y, x > y),
        };
        if worse {
            return false;
        }
        strictly |= better;
    }
    strictly
}

/// The front (1-based) of every point.
pub fn fronts(points: &[Vec<f64>], dirs: &[Direction]) -> Vec<u32> {
    let mut rank = vec![0u32; points.len()];
    let mut remaining: Vec<usize> = (0..points.len()).collect();
    let mut front = 1;
    while !remaining.is_empty() {
        let current: Vec<usize> = remaining
            .iter()
            .copied()
            .filter(|&i| {
                !remaining
                    .iter()
                    .any(|&j| j != i && dominates(&points[j], &points[i], dirs))
            })
            .collect();
        for &i in &current {
            rank[i] = front;
        }
        remaining.retain(|i| !current.contains(i));
        front += 1;
    }
    rank
}

#[cfg(test)]
mod tests {
    use super::*;
    use Direction::{Max, Min};

    #[test]
    fn hand_worked_fronts() {
        // (clip up, fid down). A (0.25, 40) dominates C (0.24, 50) and D (0.20, 60);
        // B (0.26, 45) dominates D; A and B trade off: front 1 = {A, B}; C dominates D:
        // front 2 = {C}, front 3 = {D}.
        let p = vec![
            vec![0.25, 40.0],
            vec![0.26, 45.0],
            vec![0.24, 50.0],
            vec![0.20, 60.0],
        ];
        assert_eq!(fronts(&p, &[Max, Min]), vec![1, 1, 2, 3]);
    }

    #[test]
    fn ties_share_a_front_and_do_not_dominate() {
        let p = vec![vec![0.2, 10.0], vec![0.2, 10.0], vec![0.2, 11.0]];
        assert!(!dominates(&p[0], &p[1], &[Max, Min]));
        // Equal CLIP, better FID: dominates.
        assert!(dominates(&p[0], &p[2], &[Max, Min]));
        assert_eq!(fronts(&p, &[Max, Min]), vec![1, 1, 2]);
    }

    #[test]
    fn a_single_metric_is_a_dense_ranking() {
        let p = vec![vec![3.0], vec![1.0], vec![2.0], vec![1.0]];
        assert_eq!(fronts(&p, &[Min]), vec![3, 1, 2, 1]);
    }

    #[test]
    fn metric_specs_parse_and_errors_name_the_part() {
        let m = parse_metrics("clip:max, fid:min").unwrap();
        assert_eq!(m[0].name, "clip");
        assert_eq!(m[1].direction, Min);
        let e = parse_metrics("fid:down").unwrap_err().to_string();
        assert!(e.contains("`fid:down`"), "{e}");
        assert!(parse_metrics("fid").is_err());
        let m = parse_metrics("class_accuracy | prompt_class_accuracy:max,fid:min").unwrap();
        assert_eq!(
            m[0].alternatives,
            vec!["class_accuracy".to_string(), "prompt_class_accuracy".into()]
        );
        assert_eq!(m[0].name, "class_accuracy|prompt_class_accuracy");
        assert_eq!(m[1].alternatives, vec!["fid".to_string()]);
        let e = parse_metrics("a||b:max").unwrap_err().to_string();
        assert!(e.contains("`a||b:max`"), "{e}");
    }
}
