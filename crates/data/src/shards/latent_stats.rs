//! Statistics of the train split's latents, for normalising them by the data instead of the
//! autoencoder's constants (the paper normalises with statistics computed over a subset of the
//! data; docs/data.md). Each precompute unit records the per-channel sums of its samples'
//! posterior means as stored (after the fp16 conversion, so the statistics describe exactly what a
//! run reads); the manifest holds the merged mean and standard deviation, per channel and over all
//! channels.

use crate::error::{DataError, Result};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// Per-channel sums of latent values. Sums are in f64 and merged in unit order, so the result does
/// not depend on how many processes shared the work.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatentSums {
    /// Values summed per channel (samples x height x width).
    pub values_per_channel: u64,
    pub sum: Vec<f64>,
    pub sum_sq: Vec<f64>,
}

impl LatentSums {
    /// Adds latents `[B, C, H, W]`.
    pub fn add(&mut self, latents: &Tensor) -> Result<()> {
        let size = latents.size();
        let [b, _, h, w] = size[..] else {
            return Err(DataError::Invalid(format!(
                "latent statistics need [B, C, H, W] latents, got {size:?}"
            )));
        };
        let x = latents.f_to_kind(Kind::Double)?;
        let sum = Vec::<f64>::try_from(x.f_sum_dim_intlist(
            [0i64, 2, 3].as_slice(),
            false,
            Kind::Double,
        )?)?;
        let sum_sq = Vec::<f64>::try_from(x.f_square()?.f_sum_dim_intlist(
            [0i64, 2, 3].as_slice(),
            false,
            Kind::Double,
        )?)?;
        self.merge(&Self {
            values_per_channel: (b * h * w) as u64,
            sum,
            sum_sq,
        })
    }

    /// Adds another unit's sums; a different channel count is an error.
    pub fn merge(&mut self, other: &Self) -> Result<()> {
        if self.sum.is_empty() {
            self.sum = vec![0.0; other.sum.len()];
            self.sum_sq = vec![0.0; other.sum.len()];
        }
        if other.sum.len() != self.sum.len() || other.sum_sq.len() != self.sum.len() {
            return Err(DataError::Invalid(format!(
                "latent sums of {} and {} channels cannot be merged",
                self.sum.len(),
                other.sum.len()
            )));
        }
        self.values_per_channel += other.values_per_channel;
        for (a, b) in self.sum.iter_mut().zip(&other.sum) {
            *a += b;
        }
        for (a, b) in self.sum_sq.iter_mut().zip(&other.sum_sq) {
            *a += b;
        }
        Ok(())
    }

    /// The statistics; `None` without values.
    pub fn stats(&self) -> Option<LatentStats> {
        let n = self.values_per_channel as f64;
        if self.values_per_channel == 0 || self.sum.is_empty() {
            return None;
        }
        let moments = |s: f64, s2: f64, n: f64| {
            let mean = s / n;
            (mean, (s2 / n - mean * mean).max(0.0).sqrt())
        };
        let (channel_mean, channel_std) = self
            .sum
            .iter()
            .zip(&self.sum_sq)
            .map(|(s, s2)| moments(*s, *s2, n))
            .unzip();
        let all = n * self.sum.len() as f64;
        let (mean, std) = moments(self.sum.iter().sum(), self.sum_sq.iter().sum(), all);
        Some(LatentStats {
            values: self.values_per_channel * self.sum.len() as u64,
            mean,
            std,
            channel_mean,
            channel_std,
        })
    }
}

/// Mean and standard deviation of the train split's latents (posterior means, as stored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatentStats {
    /// Values behind the global numbers (all channels).
    pub values: u64,
    pub mean: f64,
    pub std: f64,
    pub channel_mean: Vec<f64>,
    pub channel_std: Vec<f64>,
}

impl LatentStats {
    /// Consistency with `channels` latent channels; the message names the field.
    pub fn validate(&self, channels: i64) -> std::result::Result<(), String> {
        let finite = |v: &[f64]| v.iter().all(|x| x.is_finite());
        let usable = self.values > 0
            && self.mean.is_finite()
            && self.std.is_finite()
            && self.std > 0.0
            && finite(&self.channel_mean)
            && finite(&self.channel_std);
        if !usable {
            return Err(format!(
                "field latent_stats: values ({}) must be > 0, the means finite and std ({}) \
                 positive",
                self.values, self.std
            ));
        }
        let c = channels.max(0) as usize;
        if self.channel_mean.len() != c || self.channel_std.len() != c {
            return Err(format!(
                "field latent_stats: {} channel means and {} stds for {c} latent channels",
                self.channel_mean.len(),
                self.channel_std.len()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Merged unit sums give the statistics of all the values at once, per channel and global.
    #[test]
    fn merged_sums_give_the_statistics_of_all_values() {
        tch::manual_seed(1);
        let a = Tensor::randn([5, 3, 4, 4], (Kind::Float, tch::Device::Cpu)) * 2.0 + 0.5;
        let b = Tensor::randn([7, 3, 4, 4], (Kind::Float, tch::Device::Cpu)) * 0.5 - 1.0;
        let (mut sa, mut sb) = (LatentSums::default(), LatentSums::default());
        sa.add(&a).unwrap();
        sb.add(&b).unwrap();
        let mut merged = LatentSums::default();
        merged.merge(&sa).unwrap();
        merged.merge(&sb).unwrap();
        let s = merged.stats().unwrap();
        let all = Tensor::cat(&[&a, &b], 0).to_kind(Kind::Double);
        let close = |x: f64, y: f64| (x - y).abs() < 1e-9 * y.abs().max(1.0);
        assert!(close(s.mean, all.mean(Kind::Double).double_value(&[])));
        assert!(
            close(s.std, all.std(false).double_value(&[])),
            "{} population std",
            s.std
        );
        for ch in 0..3 {
            let x = all.select(1, ch);
            assert!(close(
                s.channel_mean[ch as usize],
                x.mean(Kind::Double).double_value(&[])
            ));
            assert!(close(
                s.channel_std[ch as usize],
                x.std(false).double_value(&[])
            ));
        }
        assert_eq!(s.values, 12 * 3 * 16);
        assert!(s.validate(3).is_ok());
        assert!(s.validate(4).unwrap_err().contains("4 latent channels"));
        let two = LatentSums {
            values_per_channel: 1,
            sum: vec![0.0; 2],
            sum_sq: vec![0.0; 2],
        };
        assert!(merged.merge(&two).is_err());
        assert_eq!(LatentSums::default().stats(), None);
    }
}
