//! The Frechet distance between two Gaussians, the number FID reports:
//!
//! `d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))`.
//!
//! Only the trace of the matrix square root is needed. pytorch-fid takes
//! `scipy.linalg.sqrtm(S1 @ S2)` (a Schur method on a non-symmetric product, with a `1e-6 I`
//! offset retried when the result is not finite, and the imaginary part dropped). Here the
//! product is replaced by the similar symmetric matrix `M = S1^(1/2) S2 S1^(1/2)`: `S1 S2 =
//! S1^(1/2) M S1^(-1/2)` has the same eigenvalues, so `tr((S1 S2)^(1/2)) = sum sqrt(eig(M))`.
//! Both square roots come from LAPACK's symmetric eigen-solver (`linalg_eigh`) in float64, whose
//! eigenvalues are real by construction; eigenvalues that rounding makes slightly negative
//! (covariances of fewer samples than dimensions are singular) are clamped to 0. There is no
//! complex arithmetic, no offset and no failure mode on singular covariances.

use crate::error::{EvalError, Result};
use crate::stats::FeatureStats;
use tch::{Kind, Tensor};

/// The Frechet distance between `a` and `b` (float64).
pub fn frechet_distance(a: &FeatureStats, b: &FeatureStats) -> Result<f64> {
    a.check("first statistics")?;
    b.check("second statistics")?;
    if a.dim() != b.dim() {
        return Err(EvalError::Invalid(format!(
            "Frechet distance of statistics with different feature dimensions ({} and {})",
            a.dim(),
            b.dim()
        )));
    }
    let (s1, s2) = (symmetric(&a.cov)?, symmetric(&b.cov)?);
    let diff = a.mean.f_sub(&b.mean)?;
    let mean_term = diff.f_dot(&diff)?.f_double_value(&[])?;
    let trace_term = s1.f_trace()?.f_double_value(&[])? + s2.f_trace()?.f_double_value(&[])?;
    let root1 = psd_sqrt(&s1)?;
    let m = symmetric(&root1.f_matmul(&s2)?.f_matmul(&root1)?)?;
    let (eig, _) = m.f_linalg_eigh("L")?;
    let tr_covmean = eig.f_clamp_min(0.0)?.f_sqrt()?.f_sum(Kind::Double)?;
    let d2 = mean_term + trace_term - 2.0 * tr_covmean.f_double_value(&[])?;
    if !d2.is_finite() {
        return Err(EvalError::Invalid(format!(
            "Frechet distance is not finite ({d2}); the statistics contain NaN or inf"
        )));
    }
    Ok(d2)
}

/// `(x + x^T) / 2` in float64.
fn symmetric(x: &Tensor) -> Result<Tensor> {
    let x = x.f_to_kind(Kind::Double)?;
    Ok(x.f_add(&x.f_transpose(0, 1)?)?.f_mul_scalar(0.5)?)
}

/// The symmetric positive semi-definite square root `V diag(sqrt(max(w, 0))) V^T`.
fn psd_sqrt(s: &Tensor) -> Result<Tensor> {
    let (w, v) = s.f_linalg_eigh("L")?;
    let root = w.f_clamp_min(0.0)?.f_sqrt()?;
    Ok(v.f_mul(&root.f_unsqueeze(0)?)?
        .f_matmul(&v.f_transpose(0, 1)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn stats(mean: &[f64], cov: &[f64]) -> FeatureStats {
        let d = mean.len() as i64;
        FeatureStats {
            mean: Tensor::from_slice(mean),
            cov: Tensor::from_slice(cov).reshape([d, d]),
            n: 10,
        }
    }

    #[test]
    fn diagonal_gaussians_have_the_closed_form() {
        // Diagonal: d^2 = |dmu|^2 + sum (sqrt(a_i) - sqrt(b_i))^2.
        let a = stats(&[0.0, 1.0], &[4.0, 0.0, 0.0, 9.0]);
        let b = stats(&[1.0, 1.0], &[1.0, 0.0, 0.0, 16.0]);
        let d = frechet_distance(&a, &b).unwrap();
        let expect = 1.0 + (2.0f64 - 1.0).powi(2) + (3.0f64 - 4.0).powi(2);
        assert!((d - expect).abs() < 1e-12, "{d}");
    }

    #[test]
    fn identical_statistics_are_at_distance_zero_even_when_singular() {
        let x = Tensor::randn([5, 12], (Kind::Double, Device::Cpu));
        let s = FeatureStats::from_features(&x).unwrap();
        let t = FeatureStats::from_features(&x).unwrap();
        let d = frechet_distance(&s, &t).unwrap();
        // Seven zero eigenvalues: sqrt turns their ~1e-15 rounding into ~1e-7 against traces of ~12.
        assert!(d.abs() < 1e-5, "{d}");
    }

    #[test]
    fn dimension_mismatch_is_named() {
        let a = stats(&[0.0], &[1.0]);
        let b = stats(&[0.0, 0.0], &[1.0, 0.0, 0.0, 1.0]);
        let e = frechet_distance(&a, &b).unwrap_err().to_string();
        assert!(e.contains("(1 and 2)"), "{e}");
    }
}
