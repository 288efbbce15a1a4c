//! Gaussian statistics of a feature set: mean and unbiased covariance in float64, as
//! pytorch-fid's `calculate_activation_statistics` computes them (`np.mean(axis=0)`,
//! `np.cov(rowvar=False)`).

use crate::error::{EvalError, Result};
use tch::{Device, Kind, Tensor};

/// Mean `[d]` and covariance `[d, d]` of features, float64 on the CPU.
#[derive(Debug)]
pub struct FeatureStats {
    pub mean: Tensor,
    pub cov: Tensor,
    /// Number of feature vectors the statistics come from.
    pub n: usize,
}

impl FeatureStats {
    /// Statistics of `features` `[n, d]` (any float kind; computed in float64), `n >= 2`.
    pub fn from_features(features: &Tensor) -> Result<Self> {
        let size = features.size();
        if size.len() != 2 || size[0] < 2 {
            return Err(EvalError::shape("features", "[n >= 2, d]", &size));
        }
        let x = features.f_to_kind(Kind::Double)?.f_to_device(Device::Cpu)?;
        let mean = x.f_mean_dim(0, false, Kind::Double)?;
        let centred = x.f_sub(&mean)?;
        let cov = centred
            .f_transpose(0, 1)?
            .f_matmul(&centred)?
            .f_div_scalar((size[0] - 1) as f64)?;
        Ok(Self {
            mean,
            cov,
            n: size[0] as usize,
        })
    }

    /// The feature dimension.
    pub fn dim(&self) -> i64 {
        self.mean.size()[0]
    }

    /// Checks that mean and covariance agree (`[d]` and `[d, d]`, float64).
    pub fn check(&self, what: &str) -> Result<()> {
        let m = self.mean.size();
        if m.len() != 1 {
            return Err(EvalError::shape(format!("{what} mean"), "[d]", &m));
        }
        let c = self.cov.size();
        if c != [m[0], m[0]] {
            return Err(EvalError::shape(
                format!("{what} covariance"),
                format!("[{0}, {0}]", m[0]),
                &c,
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_hand_computed_covariance() {
        // Features (1, 2), (3, 2), (5, 8): means 3 and 4; cov [[4, 6], [6, 12]].
        let x = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 2.0, 5.0, 8.0]).reshape([3, 2]);
        let s = FeatureStats::from_features(&x).unwrap();
        assert_eq!(Vec::<f64>::try_from(&s.mean).unwrap(), vec![3.0, 4.0]);
        let cov = Vec::<f64>::try_from(&s.cov.reshape([4])).unwrap();
        assert_eq!(cov, vec![4.0, 6.0, 6.0, 12.0]);
        assert_eq!(s.n, 3);
    }

    #[test]
    fn rejects_a_single_sample() {
        let x = Tensor::zeros([1, 4], (Kind::Float, Device::Cpu));
        let e = FeatureStats::from_features(&x).unwrap_err().to_string();
        assert!(e.contains("features") && e.contains("[1, 4]"), "{e}");
    }
}
