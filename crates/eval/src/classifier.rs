//! Class adherence for class-conditional runs: the accuracy of a small CNN classifier on the
//! generated samples (the label each sample was generated for is the target). CLIP weights are
//! not available offline; this is the prompt-adherence score for labelled data.
//!
//! The network: conv 3x3 (C -> 16) + ReLU + max-pool 2, conv 3x3 (16 -> 32) + ReLU + max-pool 2,
//! linear (32 (H/4) (W/4) -> 128) + ReLU, linear (128 -> classes). Inputs are model pixels in
//! [-1, 1] at the run's resolution. It is trained with Adam on the run's training split by
//! `flowscale eval` when its weights file does not exist yet, and saved as safetensors with a
//! JSON beside it (held-out accuracy, steps, hash) so later evaluations reuse the same network.

use crate::error::{EvalError, Result};
use crate::hash::{read_verified_sidecar, sha256_file};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Tensor};

/// What the classifier's JSON records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierInfo {
    pub classes: i64,
    pub channels: i64,
    pub resolution: i64,
    pub train_steps: u64,
    pub batch_size: u64,
    pub lr: f64,
    pub seed: u64,
    /// Accuracy on the held-out split (all of it).
    pub held_out_accuracy: f64,
    pub held_out_n: usize,
    pub sha256: String,
}

pub struct Classifier {
    vs: nn::VarStore,
    net: nn::Sequential,
    pub info: ClassifierInfo,
}

pub const NAME: &str = "cnn-classifier";

fn build(p: &nn::Path, channels: i64, resolution: i64, classes: i64) -> nn::Sequential {
    let conv = nn::ConvConfig {
        padding: 1,
        ..Default::default()
    };
    let flat = 32 * (resolution / 4) * (resolution / 4);
    nn::seq()
        .add(nn::conv2d(p / "conv1", channels, 16, 3, conv))
        .add_fn(|x| x.relu().max_pool2d_default(2))
        .add(nn::conv2d(p / "conv2", 16, 32, 3, conv))
        .add_fn(|x| x.relu().max_pool2d_default(2).flatten(1, -1))
        .add(nn::linear(p / "fc1", flat, 128, Default::default()))
        .add_fn(|x| x.relu())
        .add(nn::linear(p / "fc2", 128, classes, Default::default()))
}

/// Training hyper-parameters.
#[derive(Debug, Clone, Copy)]
pub struct TrainSpec {
    pub steps: u64,
    pub batch_size: u64,
    pub lr: f64,
    pub seed: u64,
}

impl Classifier {
    /// Trains on `train` (model pixels `[N, C, H, W]`, labels `[N]`), measures accuracy on
    /// `held_out`, and saves to `path` (+ `.json`).
    pub fn train(
        train: (&Tensor, &Tensor),
        held_out: (&Tensor, &Tensor),
        classes: i64,
        spec: TrainSpec,
        path: &Path,
        device: Device,
    ) -> Result<Self> {
        let size = train.0.size();
        if size.len() != 4 || size[2] != size[3] || size[2] % 4 != 0 {
            return Err(EvalError::shape(
                "classifier training images",
                "[N, C, R, R] with R divisible by 4",
                &size,
            ));
        }
        tch::manual_seed(spec.seed as i64);
        let vs = nn::VarStore::new(device);
        let net = build(&vs.root(), size[1], size[2], classes);
        let mut opt = nn::Adam::default().build(&vs, spec.lr)?;
        let n = size[0];
        for _ in 0..spec.steps {
            let idx = Tensor::f_randint(n, [spec.batch_size as i64], (Kind::Int64, Device::Cpu))?;
            let x = train.0.f_index_select(0, &idx)?.f_to_device(device)?;
            let y = train.1.f_index_select(0, &idx)?.f_to_device(device)?;
            let loss = net.forward(&x).cross_entropy_for_logits(&y);
            opt.backward_step(&loss);
        }
        let mut me = Self {
            vs,
            net,
            info: ClassifierInfo {
                classes,
                channels: size[1],
                resolution: size[2],
                train_steps: spec.steps,
                batch_size: spec.batch_size,
                lr: spec.lr,
                seed: spec.seed,
                held_out_accuracy: 0.0,
                held_out_n: held_out.0.size()[0] as usize,
                sha256: String::new(),
            },
        };
        me.info.held_out_accuracy = me.accuracy(held_out.0, held_out.1, 500)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| EvalError::io(dir, e))?;
        }
        flowscale_core::atomic::write_atomic_with(path, |tmp| me.vs.save(tmp))
            .map_err(flowscale_core::atomic::AtomicWithError::into_error::<EvalError>)?;
        me.info.sha256 = sha256_file(path)?;
        let js = path.with_extension("json");
        let text = serde_json::to_string_pretty(&me.info).expect("info serialises") + "\n";
        flowscale_core::write_atomic(&js, text.as_bytes())?;
        Ok(me)
    }

    /// Loads a classifier saved by [`Classifier::train`]; refuses a file whose hash differs from
    /// its JSON.
    pub fn load(path: &Path, device: Device) -> Result<Self> {
        let info: ClassifierInfo =
            read_verified_sidecar(path, "sha256", |i: &ClassifierInfo| &i.sha256)?;
        let mut vs = nn::VarStore::new(device);
        let net = build(&vs.root(), info.channels, info.resolution, info.classes);
        vs.load(path).map_err(|e| EvalError::corrupt(path, e))?;
        Ok(Self { vs, net, info })
    }

    /// Predicted classes of model pixels `[N, C, H, W]`.
    pub fn predict(&self, x: &Tensor, batch_size: usize) -> Result<Tensor> {
        let size = x.size();
        let want = [
            self.info.channels,
            self.info.resolution,
            self.info.resolution,
        ];
        if size.len() != 4 || size[1..] != want {
            return Err(EvalError::shape(
                "classifier input",
                format!("[N, {}, {}, {}]", want[0], want[1], want[2]),
                &size,
            ));
        }
        let _guard = tch::no_grad_guard();
        let device = self.vs.device();
        let mut out = Vec::new();
        let mut start = 0;
        while start < size[0] {
            let len = (batch_size.max(1) as i64).min(size[0] - start);
            let xb = x.f_narrow(0, start, len)?.f_to_device(device)?;
            out.push(
                self.net
                    .forward(&xb)
                    .f_argmax(-1, false)?
                    .f_to_device(Device::Cpu)?,
            );
            start += len;
        }
        Ok(Tensor::f_cat(&out, 0)?)
    }

    /// Fraction of `x` classified as `labels`.
    pub fn accuracy(&self, x: &Tensor, labels: &Tensor, batch_size: usize) -> Result<f64> {
        let pred = self.predict(x, batch_size)?;
        let labels = labels.f_to_device(Device::Cpu)?;
        Ok(pred
            .f_eq_tensor(&labels)?
            .f_to_kind(Kind::Double)?
            .f_mean(Kind::Double)?
            .f_double_value(&[])?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_separable_toy_problem_and_round_trips() {
        // Class 0: bright left half; class 1: bright right half (plus noise).
        tch::manual_seed(1);
        let n = 256;
        let labels = Tensor::randint(2, [n], (Kind::Int64, Device::Cpu));
        let cols = Tensor::arange(8, (Kind::Float, Device::Cpu)).view([1, 1, 1, 8]);
        let right = cols.ge(4.0).to_kind(Kind::Float);
        let lab = labels.to_kind(Kind::Float).view([n, 1, 1, 1]);
        let pattern: Tensor = &right * &lab + (1.0 - &right) * (1.0 - &lab);
        let x: Tensor = pattern.expand([n, 1, 8, 8], false) * 2.0 - 1.0
            + Tensor::randn([n, 1, 8, 8], (Kind::Float, Device::Cpu)) * 0.3;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.safetensors");
        let spec = TrainSpec {
            steps: 60,
            batch_size: 32,
            lr: 5e-3,
            seed: 0,
        };
        let c =
            Classifier::train((&x, &labels), (&x, &labels), 2, spec, &path, Device::Cpu).unwrap();
        assert!(c.info.held_out_accuracy > 0.95, "{:?}", c.info);
        // A label-swapped target scores the complement.
        let swapped: Tensor = 1 - &labels;
        let acc = c.accuracy(&x, &swapped, 100).unwrap();
        assert!((acc + c.info.held_out_accuracy - 1.0).abs() < 1e-12);
        let again = Classifier::load(&path, Device::Cpu).unwrap();
        assert!(again
            .predict(&x, 50)
            .unwrap()
            .equal(&c.predict(&x, 256).unwrap()));
        let e = again
            .predict(&Tensor::zeros([1, 1, 4, 4], (Kind::Float, Device::Cpu)), 1)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("[N, 1, 8, 8]"), "{e}");
    }
}
