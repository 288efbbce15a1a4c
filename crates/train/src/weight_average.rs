//! One running average of the trained tensors: copies in parameter order (in the parameters'
//! own precision: the fp32 master weights in training) with their names.
//! The classic EMAs (`ema.rs`, one per decay) and the power-function EMAs
//! (`posthoc/tracker.rs`, one per std) differ only in the weight of each update, so both keep
//! their averages in this type.

use crate::error::Result;
use std::collections::HashMap;
use tch::Tensor;

pub struct WeightAverage {
    names: Vec<String>,
    values: Vec<Tensor>,
}

impl WeightAverage {
    /// Starts as copies of `params`, in their precision.
    pub fn copy_of(params: &[(String, Tensor)]) -> Result<Self> {
        let _guard = tch::no_grad_guard();
        let values = params
            .iter()
            .map(|(_, p)| {
                let mut avg = p.f_zeros_like()?.f_detach()?;
                avg.f_copy_(p)?;
                Ok(avg)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            names: params.iter().map(|(n, _)| n.clone()).collect(),
            values,
        })
    }

    /// `avg <- (1 - weight) avg + weight p` for every parameter: one multi-tensor `lerp_`
    /// (`_foreach_lerp_`: one kernel per device and dtype on CUDA, the same per-tensor loop on
    /// the CPU).
    pub fn move_towards(&mut self, params: &[(String, Tensor)], weight: f64) -> Result<()> {
        let _guard = tch::no_grad_guard();
        let targets: Vec<Tensor> = params.iter().map(|(_, p)| p.shallow_clone()).collect();
        Ok(flowscale_torch_ext::foreach::foreach_lerp_(
            &self.values,
            &targets,
            weight,
        )?)
    }

    /// The averages, in parameter order.
    pub fn values(&self) -> &[Tensor] {
        &self.values
    }

    /// The averages as named tensors.
    pub fn named(&self) -> Vec<(String, Tensor)> {
        self.names
            .iter()
            .cloned()
            .zip(self.values.iter().map(Tensor::shallow_clone))
            .collect()
    }

    /// Restores the averages from named tensors (all names, same shapes); `what` names the
    /// average in the error (e.g. `EMA 0.99`).
    pub fn load(&mut self, values: &HashMap<String, Tensor>, what: &str) -> Result<()> {
        crate::optim::restore_named(
            self.named(),
            values,
            &format!("{what} does not match the model"),
        )
    }
}
