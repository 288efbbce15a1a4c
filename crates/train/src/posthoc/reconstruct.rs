//! Post-hoc reconstruction: the average of a power-function EMA with any std, at a step that
//! has snapshots, as a linear combination of the stored snapshots (EDM2 App. C.2). The
//! coefficients come from [`super::profile::solve`] on the snapshots' profiles; the combination
//! runs in f64 over one snapshot at a time, so memory stays at two copies of the weights.

use super::profile::{solve, std_to_gamma, Fit, Profile};
use super::snapshots::Snapshot;
use crate::error::{Result, TrainError};
use std::collections::HashMap;
use std::path::Path;
use tch::{Kind, Tensor};

/// A reconstructed average and how it was made.
#[derive(Debug)]
pub struct Reconstruction {
    pub std: f64,
    pub gamma: f64,
    pub step: u64,
    /// The combined weights (fp32), by name, sorted.
    pub tensors: Vec<(String, Tensor)>,
    /// The snapshots used, in the order of `fit.coefficients`.
    pub sources: Vec<Snapshot>,
    pub fit: Fit,
}

/// Reconstructs the EMA of relative std `std` as it stands after step `step` from the
/// snapshots in `snapshots` taken at or before `step` (files under `run_dir`).
pub fn reconstruct(
    run_dir: &Path,
    snapshots: &[Snapshot],
    std: f64,
    step: u64,
) -> Result<Reconstruction> {
    let gamma = std_to_gamma(std)?;
    let sources: Vec<Snapshot> = snapshots
        .iter()
        .filter(|s| s.step <= step)
        .cloned()
        .collect();
    if sources.is_empty() {
        return Err(TrainError::Invalid(format!(
            "{}: no post-hoc EMA snapshot at or before step {step}",
            run_dir.display()
        )));
    }
    let profiles: Vec<Profile> = sources.iter().map(Snapshot::profile).collect();
    let fit = solve(
        &profiles,
        Profile {
            t: step as f64,
            gamma,
        },
    )?;
    let mut sum: Option<(Snapshot, HashMap<String, Tensor>)> = None;
    let _guard = tch::no_grad_guard();
    for (snapshot, c) in sources.iter().zip(&fit.coefficients) {
        let tensors = snapshot.load(run_dir)?;
        match &mut sum {
            None => {
                let scaled = tensors
                    .into_iter()
                    .map(|(k, t)| Ok((k, t.f_to_kind(Kind::Double)?.f_mul_scalar(*c)?)))
                    .collect::<Result<HashMap<_, _>>>()?;
                sum = Some((snapshot.clone(), scaled));
            }
            Some((first, acc)) => {
                check_same_tensors(run_dir, first, acc, snapshot, &tensors)?;
                for (name, t) in &tensors {
                    let a = acc.get_mut(name).expect("names checked");
                    let _ = a.f_add_(&t.f_to_kind(Kind::Double)?.f_mul_scalar(*c)?)?;
                }
            }
        }
    }
    let (_, acc) = sum.expect("at least one source");
    let mut tensors = acc
        .into_iter()
        .map(|(k, t)| Ok((k, t.f_to_kind(Kind::Float)?)))
        .collect::<Result<Vec<_>>>()?;
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Reconstruction {
        std,
        gamma,
        step,
        tensors,
        sources,
        fit,
    })
}

/// Every snapshot must hold the same tensor names and shapes as the first one read.
fn check_same_tensors(
    run_dir: &Path,
    first: &Snapshot,
    expected: &HashMap<String, Tensor>,
    snapshot: &Snapshot,
    found: &HashMap<String, Tensor>,
) -> Result<()> {
    let mismatch = found.len() != expected.len()
        || found
            .iter()
            .any(|(k, t)| expected.get(k).is_none_or(|e| e.size() != t.size()));
    if mismatch {
        return Err(TrainError::corrupt(
            super::snapshots::posthoc_dir(run_dir).join(&snapshot.file),
            format!("holds other tensors (names or shapes) than {}", first.file),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::snapshots::write;
    use super::*;

    #[test]
    fn a_stored_std_reconstructs_its_own_snapshot() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path();
        for (s, base) in [(0.05, 10.0f32), (0.1, 20.0)] {
            let g = std_to_gamma(s).unwrap();
            for step in [5u64, 10, 15, 20] {
                let v = base + step as f32;
                let t = vec![("w".to_string(), Tensor::from_slice(&[v, -v, 0.5 * v]))];
                write(run, s, g, step, &t).unwrap();
            }
        }
        let all = super::super::snapshots::list(run).unwrap();
        let rec = reconstruct(run, &all, 0.1, 15).unwrap();
        assert_eq!(rec.sources.len(), 6, "steps <= 15 of both stds");
        let expected = Tensor::from_slice(&[35.0f32, -35.0, 17.5]);
        let diff = (&rec.tensors[0].1 - &expected)
            .abs()
            .max()
            .double_value(&[]);
        assert!(diff < 1e-4, "{diff}");
        assert!(rec.fit.relative_residual < 1e-6);
        let err = reconstruct(run, &all, 0.1, 4).unwrap_err().to_string();
        assert!(
            err.contains("no post-hoc EMA snapshot at or before step 4"),
            "{err}"
        );
        let err = reconstruct(run, &all, 0.5, 15).unwrap_err().to_string();
        assert!(err.contains("std 0.5"), "{err}");
    }
}
