//! AdamW with its state in plain tensors, stepping through ATen's fused kernel
//! (`torch.optim.AdamW(fused=True)`), one launch per parameter group.
//!
//! Why not tch's optimiser: its moments cannot be read or restored, so a run could not resume
//! exactly. Here `state()` names every moment by its parameter and `load_state()` puts them back.

use super::groups::by_decay;
use crate::error::{Result, TrainError};
use flowscale_torch_ext::fused_adamw::{fused_adamw_step, AdamWParams, AdamWTensors};
use std::collections::HashMap;
use tch::{Kind, Tensor};

/// Hyper-parameters (PyTorch's names).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
}

impl AdamWConfig {
    /// The fused kernel's parameters for one group at learning rate `lr` (`decay`: whether the
    /// group gets weight decay).
    pub fn kernel_params(&self, lr: f64, decay: bool) -> AdamWParams {
        AdamWParams {
            lr,
            beta1: self.betas.0,
            beta2: self.betas.1,
            weight_decay: if decay { self.weight_decay } else { 0.0 },
            eps: self.eps,
            amsgrad: false,
            maximize: false,
        }
    }
}

/// Copies the named tensors of `state` into `expected` (the optimiser's own state, by name),
/// after checking that every key is present with its shape and no other key is: `what` names
/// the state in the error.
pub fn restore_named(
    expected: Vec<(String, Tensor)>,
    state: &HashMap<String, Tensor>,
    what: &str,
) -> Result<()> {
    let none = std::collections::HashSet::new();
    if let Some(problems) = crate::checkpoint::tensor_match::mismatch(&expected, &none, state) {
        return Err(TrainError::Invalid(format!("{what}: {problems}")));
    }
    let _guard = tch::no_grad_guard();
    for (k, t) in expected {
        let mut target = t;
        target.f_copy_(&state[&k])?;
    }
    Ok(())
}

struct Group {
    decay: bool,
    params: Vec<Tensor>,
    exp_avgs: Vec<Tensor>,
    exp_avg_sqs: Vec<Tensor>,
    steps: Vec<Tensor>,
    names: Vec<String>,
}

pub struct AdamW {
    config: AdamWConfig,
    groups: Vec<Group>,
    step: u64,
}

impl std::fmt::Debug for AdamW {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdamW")
            .field("config", &self.config)
            .field("step", &self.step)
            .finish()
    }
}

impl AdamW {
    /// Zero moments for `params` (name, tensor), split into decay / no-decay groups by
    /// [`decays`].
    pub fn new(params: &[(String, Tensor)], config: AdamWConfig) -> Result<Self> {
        let mut groups = vec![];
        for (decay, chosen) in by_decay(params) {
            let mut g = Group {
                decay,
                params: vec![],
                exp_avgs: vec![],
                exp_avg_sqs: vec![],
                steps: vec![],
                names: vec![],
            };
            for (name, p) in chosen {
                g.names.push(name.clone());
                g.params.push(p.shallow_clone());
                g.exp_avgs.push(p.f_zeros_like()?.f_detach()?);
                g.exp_avg_sqs.push(p.f_zeros_like()?.f_detach()?);
                g.steps
                    .push(Tensor::f_zeros([] as [i64; 0], (Kind::Float, p.device()))?);
            }
            groups.push(g);
        }
        Ok(Self {
            config,
            groups,
            step: 0,
        })
    }

    /// Optimiser steps taken.
    pub fn steps_taken(&self) -> u64 {
        self.step
    }

    /// Bytes of the two moments.
    pub fn state_bytes(&self) -> u64 {
        self.groups
            .iter()
            .flat_map(|g| g.exp_avgs.iter().chain(&g.exp_avg_sqs))
            .map(|t| t.numel() as u64 * t.kind().elt_size_in_bytes() as u64)
            .sum()
    }

    /// Names of the parameters that get weight decay and of those that do not.
    pub fn group_names(&self) -> (Vec<String>, Vec<String>) {
        (self.groups[0].names.clone(), self.groups[1].names.clone())
    }

    /// One step at learning rate `lr` over every parameter that has a gradient.
    pub fn step(&mut self, lr: f64) -> Result<()> {
        let _guard = tch::no_grad_guard();
        for g in &mut self.groups {
            let mut sel = (vec![], vec![], vec![], vec![], vec![]);
            for i in 0..g.params.len() {
                let grad = g.params[i].grad();
                if !grad.defined() {
                    continue;
                }
                let _ = g.steps[i].f_add_scalar_(1.0)?;
                sel.0.push(g.params[i].shallow_clone());
                sel.1.push(grad);
                sel.2.push(g.exp_avgs[i].shallow_clone());
                sel.3.push(g.exp_avg_sqs[i].shallow_clone());
                sel.4.push(g.steps[i].shallow_clone());
            }
            if sel.0.is_empty() {
                continue;
            }
            let hp = self.config.kernel_params(lr, g.decay);
            let tensors = AdamWTensors {
                params: &sel.0,
                grads: &sel.1,
                exp_avgs: &sel.2,
                exp_avg_sqs: &sel.3,
                max_exp_avg_sqs: &[],
                state_steps: &sel.4,
            };
            fused_adamw_step(&tensors, &hp)?;
        }
        self.step += 1;
        Ok(())
    }

    /// Clears every gradient.
    pub fn zero_grad(&mut self) {
        for g in &mut self.groups {
            for p in &mut g.params {
                p.zero_grad();
            }
        }
    }

    /// The state as named tensors: `exp_avg.<param>`, `exp_avg_sq.<param>`, `step.<param>`.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![];
        for g in &self.groups {
            for (i, name) in g.names.iter().enumerate() {
                out.push((format!("exp_avg.{name}"), g.exp_avgs[i].shallow_clone()));
                out.push((
                    format!("exp_avg_sq.{name}"),
                    g.exp_avg_sqs[i].shallow_clone(),
                ));
                out.push((format!("step.{name}"), g.steps[i].shallow_clone()));
            }
        }
        out
    }

    /// Restores [`AdamW::state`]; every key must be present with its shape, and no other key.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>, steps_taken: u64) -> Result<()> {
        restore_named(
            self.state(),
            state,
            "optimiser state does not match the model",
        )?;
        self.step = steps_taken;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// PyTorch's AdamW in float64 plain arithmetic.
    fn reference(
        (p, m, v): (&mut [f64], &mut [f64], &mut [f64]),
        g: &[f64],
        t: i32,
        lr: f64,
        c: AdamWConfig,
        wd: f64,
    ) {
        for i in 0..p.len() {
            p[i] *= 1.0 - lr * wd;
            m[i] = c.betas.0 * m[i] + (1.0 - c.betas.0) * g[i];
            v[i] = c.betas.1 * v[i] + (1.0 - c.betas.1) * g[i] * g[i];
            let mh = m[i] / (1.0 - c.betas.0.powi(t));
            let vh = (v[i] / (1.0 - c.betas.1.powi(t))).sqrt();
            p[i] -= lr * mh / (vh + c.eps);
        }
    }

    #[test]
    fn matches_reference_with_groups_and_resumes_exactly() {
        let cfg = AdamWConfig {
            betas: (0.9, 0.95),
            eps: 1e-15,
            weight_decay: 0.1,
        };
        let w = Tensor::from_slice(&[0.5f64, -1.0, 2.0, 0.25])
            .view([2, 2])
            .set_requires_grad(true);
        let b = Tensor::from_slice(&[0.3f64, -0.7]).set_requires_grad(true);
        let params = vec![
            ("lin.weight".to_string(), w.shallow_clone()),
            ("lin.bias".to_string(), b.shallow_clone()),
        ];
        let mut opt = AdamW::new(&params, cfg).unwrap();
        assert_eq!(opt.group_names().0, vec!["lin.weight".to_string()]);
        let (mut pw, mut pb) = (vec![0.5, -1.0, 2.0, 0.25], vec![0.3, -0.7]);
        let (mut mw, mut vw, mut mb, mut vb) =
            (vec![0.0; 4], vec![0.0; 4], vec![0.0; 2], vec![0.0; 2]);
        let x = Tensor::from_slice(&[1.0f64, -2.0]).view([2, 1]);
        let mut saved: Option<(HashMap<String, Tensor>, Vec<f64>)> = None;
        for t in 1..=6 {
            let lr = 0.01 * t as f64;
            opt.zero_grad();
            let loss = (w.matmul(&x).squeeze() + &b).square().sum(Kind::Double);
            loss.backward();
            let gw: Vec<f64> = Vec::try_from(w.grad().flatten(0, -1)).unwrap();
            let gb: Vec<f64> = Vec::try_from(b.grad()).unwrap();
            opt.step(lr).unwrap();
            reference((&mut pw, &mut mw, &mut vw), &gw, t, lr, cfg, 0.1);
            reference((&mut pb, &mut mb, &mut vb), &gb, t, lr, cfg, 0.0);
            let got: Vec<f64> = Vec::try_from(w.flatten(0, -1)).unwrap();
            for (a, e) in got.iter().zip(&pw) {
                assert!((a - e).abs() < 1e-12, "step {t}: {a} vs {e}");
            }
            let got_b: Vec<f64> = Vec::try_from(&b).unwrap();
            for (a, e) in got_b.iter().zip(&pb) {
                assert!((a - e).abs() < 1e-12, "bias step {t}: {a} vs {e}");
            }
            if t == 3 {
                let state = opt
                    .state()
                    .into_iter()
                    .map(|(k, v)| (k, v.copy()))
                    .collect();
                let weights = [
                    Vec::<f64>::try_from(w.flatten(0, -1)).unwrap(),
                    Vec::<f64>::try_from(&b).unwrap(),
                ]
                .concat();
                saved = Some((state, weights));
            }
        }
        // A fresh optimiser loaded from step 3 continues to the same step-6 weights.
        let (state, weights) = saved.unwrap();
        let w2 = Tensor::from_slice(&weights[..4])
            .view([2, 2])
            .set_requires_grad(true);
        let b2 = Tensor::from_slice(&weights[4..]).set_requires_grad(true);
        let params2 = vec![
            ("lin.weight".to_string(), w2.shallow_clone()),
            ("lin.bias".to_string(), b2.shallow_clone()),
        ];
        let mut opt2 = AdamW::new(&params2, cfg).unwrap();
        opt2.load_state(&state, 3).unwrap();
        for t in 4..=6 {
            opt2.zero_grad();
            (w2.matmul(&x).squeeze() + &b2)
                .square()
                .sum(Kind::Double)
                .backward();
            opt2.step(0.01 * t as f64).unwrap();
        }
        assert!(w2.equal(&w) && b2.equal(&b));
        // A state with a missing and an unexpected key names both.
        let mut bad = state;
        bad.remove("exp_avg.lin.bias");
        bad.insert(
            "exp_avg.other".into(),
            Tensor::zeros([1], (Kind::Double, Device::Cpu)),
        );
        let e = opt2.load_state(&bad, 3).unwrap_err().to_string();
        assert!(
            e.contains("missing exp_avg.lin.bias") && e.contains("unexpected exp_avg.other"),
            "{e}"
        );
    }
}
