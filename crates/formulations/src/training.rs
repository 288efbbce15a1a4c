//! Training side: one batch of (t, eps, z_t, network inputs, target, per-sample weight).
//!
//! Randomness: timesteps are drawn on the host from a [`FlowRng`]; the noise tensor is drawn by
//! torch on x0's device right after reseeding torch's global generator with the next output of the
//! same `FlowRng`. A batch is therefore a pure function of (x0, rng state). This does reseed torch's
//! global generator; callers who want to own the noise use [`Formulation::training_batch_with`].

use crate::error::{FormulationError, Result};
use crate::formulation::Formulation;
use crate::path::NoiseLevel;
use crate::shift::Shift;
use flowscale_core::FlowRng;
use tch::Tensor;

/// One training batch. The loss is `weight · mean_{non-batch}((net(net_input, time_input) - target)^2)`.
#[derive(Debug)]
pub struct TrainingBatch {
    /// Levels of the batch (native time after shift, a, b, lambda, t_eq), one per sample.
    pub levels: Vec<NoiseLevel>,
    /// The noise eps.
    pub noise: Tensor,
    /// `z_t = a x0 + b eps` on the formulation's native path.
    pub z_t: Tensor,
    /// What the network sees: `c_in · z_t`.
    pub net_input: Tensor,
    /// Time input, shape [B]: `1000 · t_eq` (see [`Formulation::time_input`]).
    pub time_input: Tensor,
    /// The regression target for the raw network output.
    pub target: Tensor,
    /// Per-sample loss weight, shape [B].
    pub weight: Tensor,
}

/// The weighted regression loss per sample, shape [B]: the mean over non-batch dims of
/// `(prediction - target)^2`, times `weight` `[B]`. [`TrainingBatch::per_sample_loss`] on a
/// batch's own tensors; the trainer's CUDA-graph step calls it on copies of them.
pub fn weighted_per_sample_loss(
    prediction: &Tensor,
    target: &Tensor,
    weight: &Tensor,
) -> Result<Tensor> {
    if prediction.size() != target.size() {
        return Err(FormulationError::InvalidTensor(format!(
            "prediction {:?} does not match target {:?}",
            prediction.size(),
            target.size()
        )));
    }
    let sq = prediction.f_sub(target)?.f_square()?;
    let dims: Vec<i64> = (1..sq.dim() as i64).collect();
    let per = if dims.is_empty() {
        sq
    } else {
        sq.f_mean_dim(dims.as_slice(), false, sq.kind())?
    };
    Ok(per.f_mul(weight)?)
}

/// Per-sample scalars as a tensor of shape [B, 1, ..., 1] matching `like`.
pub(crate) fn per_sample(values: &[f64], like: &Tensor) -> Result<Tensor> {
    let mut shape = vec![values.len() as i64];
    shape.extend(std::iter::repeat_n(1, like.dim().saturating_sub(1)));
    Ok(Tensor::f_from_slice(values)?
        .f_to_kind(like.kind())?
        .f_to_device(like.device())?
        .f_view(shape.as_slice())?)
}

fn check_data(x0: &Tensor) -> Result<i64> {
    if x0.dim() == 0 {
        return Err(FormulationError::InvalidTensor(
            "x0 needs a batch dimension".into(),
        ));
    }
    if !x0.is_floating_point() {
        return Err(FormulationError::InvalidTensor(format!(
            "x0 must be floating point, got {:?}",
            x0.kind()
        )));
    }
    Ok(x0.size()[0])
}

impl Formulation {
    /// Draws `n` native training times from the formulation's distribution, then applies `shift`.
    pub fn sample_times(self, n: usize, rng: &mut FlowRng, shift: Option<Shift>) -> Vec<f64> {
        let dist = self.timesteps();
        (0..n)
            .map(|_| self.shifted_time(dist.sample(rng), shift))
            .collect()
    }

    /// A training batch for data `x0` (shape [B, ...]): times, noise and everything derived.
    pub fn training_batch(
        self,
        x0: &Tensor,
        rng: &mut FlowRng,
        shift: Option<Shift>,
    ) -> Result<TrainingBatch> {
        let batch = check_data(x0)?;
        let times = self.sample_times(batch as usize, rng, shift);
        let noise = crate::with_torch_seed((rng.next_u64() >> 1) as i64, || {
            Tensor::f_randn(x0.size().as_slice(), (x0.kind(), x0.device()))
        })?;
        self.training_batch_with(x0, &noise, &times)
    }

    /// A training batch from given noise and native times (already shifted).
    pub fn training_batch_with(
        self,
        x0: &Tensor,
        noise: &Tensor,
        times: &[f64],
    ) -> Result<TrainingBatch> {
        let batch = check_data(x0)?;
        if noise.size() != x0.size() || times.len() as i64 != batch {
            return Err(FormulationError::InvalidTensor(format!(
                "x0 {:?}, noise {:?} and {} times do not match",
                x0.size(),
                noise.size(),
                times.len()
            )));
        }
        let param = self.parameterisation();
        let weight_kind = self.loss_weight();
        let levels: Vec<NoiseLevel> = times.iter().map(|&t| self.level(t)).collect();
        let column = |f: &dyn Fn(&NoiseLevel) -> f64| -> Result<Tensor> {
            per_sample(&levels.iter().map(f).collect::<Vec<f64>>(), x0)
        };
        let a = column(&|l| l.a)?;
        let b = column(&|l| l.b)?;
        let c_in = column(&|l| param.input_scale(l))?;
        let ta = column(&|l| param.target_coefficients(l).0)?;
        let tb = column(&|l| param.target_coefficients(l).1)?;
        let z_t = x0.f_mul(&a)?.f_add(&noise.f_mul(&b)?)?;
        let net_input = z_t.f_mul(&c_in)?;
        let target = x0.f_mul(&ta)?.f_add(&noise.f_mul(&tb)?)?;
        let flat = |f: &dyn Fn(&NoiseLevel) -> f64| -> Result<Tensor> {
            let v: Vec<f64> = levels.iter().map(f).collect();
            Ok(Tensor::f_from_slice(&v)?
                .f_to_kind(x0.kind())?
                .f_to_device(x0.device())?)
        };
        let time_input = flat(&|l| self.time_input(l))?;
        let weight = flat(&|l| weight_kind.per_sample(l))?;
        Ok(TrainingBatch {
            levels,
            noise: noise.shallow_clone(),
            z_t,
            net_input,
            time_input,
            target,
            weight,
        })
    }
}

impl TrainingBatch {
    /// Per-sample weighted loss, shape [B]: mean over non-batch dims, times the weight.
    pub fn per_sample_loss(&self, prediction: &Tensor) -> Result<Tensor> {
        weighted_per_sample_loss(prediction, &self.target, &self.weight)
    }

    /// Samples `start..start + len` of the batch (a data-parallel rank's share of a global
    /// batch drawn identically on every rank).
    pub fn rows(&self, start: usize, len: usize) -> Result<TrainingBatch> {
        let n = self.levels.len();
        if start + len > n {
            return Err(FormulationError::InvalidTensor(format!(
                "rows {start}..{} of a batch of {n}",
                start + len
            )));
        }
        let cut = |t: &Tensor| t.f_narrow(0, start as i64, len as i64);
        Ok(TrainingBatch {
            levels: self.levels[start..start + len].to_vec(),
            noise: cut(&self.noise)?,
            z_t: cut(&self.z_t)?,
            net_input: cut(&self.net_input)?,
            time_input: cut(&self.time_input)?,
            target: cut(&self.target)?,
            weight: cut(&self.weight)?,
        })
    }

    /// Batch loss: mean of [`TrainingBatch::per_sample_loss`].
    pub fn loss(&self, prediction: &Tensor) -> Result<Tensor> {
        let per = self.per_sample_loss(prediction)?;
        Ok(per.f_mean(per.kind())?)
    }
}
