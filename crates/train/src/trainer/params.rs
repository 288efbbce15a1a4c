//! The trained tensors of a run under their checkpoint names: the backbone's at its diffusers
//! keys, the conditioning provider's under `conditioner.`.

use crate::error::Result;
use tch::nn::VarStore;
use tch::Tensor;

/// Prefix of the conditioning provider's parameters in optimiser, EMA and checkpoint names.
pub const CONDITIONER_PREFIX: &str = "conditioner.";

/// Trainable variables of both stores, sorted by name (a fixed order makes every reduction over
/// parameters, and therefore a run, reproducible).
pub fn trainable(model: &VarStore, conditioner: &VarStore) -> Vec<(String, Tensor)> {
    let mut out: Vec<(String, Tensor)> = model
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .chain(
            conditioner
                .variables()
                .into_iter()
                .filter(|(_, t)| t.requires_grad())
                .map(|(k, t)| (format!("{CONDITIONER_PREFIX}{k}"), t)),
        )
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Copies `values` into `params` (matched by position; both come from the same name list).
pub fn copy_into(params: &[(String, Tensor)], values: &[Tensor]) -> Result<()> {
    let _guard = tch::no_grad_guard();
    for ((_, p), v) in params.iter().zip(values) {
        let mut target = p.shallow_clone();
        target.f_copy_(v)?;
    }
    Ok(())
}

/// Detached copies of the current values.
pub fn snapshot(params: &[(String, Tensor)]) -> Result<Vec<Tensor>> {
    let _guard = tch::no_grad_guard();
    params
        .iter()
        .map(|(_, p)| {
            let mut copy = p.f_zeros_like()?;
            copy.f_copy_(p)?;
            Ok(copy)
        })
        .collect()
}
