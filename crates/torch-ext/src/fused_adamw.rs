//! ATen's fused AdamW kernel (`at::_fused_adamw_`, the kernel behind
//! `torch.optim.AdamW(fused=True)`), on CPU and CUDA.
//!
//! The kernel updates parameters and both moments in place. Like PyTorch's optimiser, the caller
//! owns the step counters (one float32 scalar tensor per parameter, on the parameter's device)
//! and increments them *before* each call; the kernel reads them for bias correction.

use tch::Tensor;

use crate::{ffi, Result, TorchExtError};

/// AdamW hyper-parameters for one kernel call (PyTorch's names and semantics: decoupled weight
/// decay `p <- p (1 - lr wd)`, bias-corrected moments, `eps` added after the square root).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWParams {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub weight_decay: f64,
    pub eps: f64,
    pub amsgrad: bool,
    pub maximize: bool,
}

impl Default for AdamWParams {
    /// PyTorch's `torch.optim.AdamW` defaults.
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            weight_decay: 1e-2,
            eps: 1e-8,
            amsgrad: false,
            maximize: false,
        }
    }
}

/// The per-parameter state one fused call reads and updates.
pub struct AdamWTensors<'a> {
    pub params: &'a [Tensor],
    pub grads: &'a [Tensor],
    pub exp_avgs: &'a [Tensor],
    pub exp_avg_sqs: &'a [Tensor],
    /// Only read when `amsgrad` is set; then one per parameter.
    pub max_exp_avg_sqs: &'a [Tensor],
    pub state_steps: &'a [Tensor],
}

fn pointers(tensors: &[Tensor]) -> Vec<ffi::FxTensor> {
    tensors
        .iter()
        .map(|t| t.as_ptr() as ffi::FxTensor)
        .collect()
}

/// One AdamW step over all tensors in a single fused kernel launch (per device and dtype).
/// Tensors are updated in place; call it under `tch::no_grad`.
pub fn fused_adamw_step(state: &AdamWTensors<'_>, hp: &AdamWParams) -> Result<()> {
    const CALL: &str = "fused_adamw_step";
    let n = state.params.len();
    let lists = [
        ("grads", state.grads.len()),
        ("exp_avgs", state.exp_avgs.len()),
        ("exp_avg_sqs", state.exp_avg_sqs.len()),
        ("state_steps", state.state_steps.len()),
    ];
    for (name, len) in lists {
        if len != n {
            return Err(TorchExtError::Argument {
                call: CALL,
                message: format!("{name} has {len} tensors, params has {n}"),
            });
        }
    }
    if hp.amsgrad && state.max_exp_avg_sqs.len() != n {
        return Err(TorchExtError::Argument {
            call: CALL,
            message: format!(
                "amsgrad needs one max_exp_avg_sq per parameter ({} given, {n} params)",
                state.max_exp_avg_sqs.len()
            ),
        });
    }
    // The CPU kernel trusts its inputs (it indexes every list with the parameter's numel), so
    // shapes are checked here rather than left to undefined behaviour.
    for i in 0..n {
        let shape = state.params[i].size();
        let mut others = vec![
            ("grad", &state.grads[i]),
            ("exp_avg", &state.exp_avgs[i]),
            ("exp_avg_sq", &state.exp_avg_sqs[i]),
        ];
        if hp.amsgrad {
            others.push(("max_exp_avg_sq", &state.max_exp_avg_sqs[i]));
        }
        for (name, t) in others {
            if t.size() != shape {
                return Err(TorchExtError::Argument {
                    call: CALL,
                    message: format!(
                        "{name} of parameter {i} has shape {:?}, the parameter {shape:?}",
                        t.size()
                    ),
                });
            }
        }
        if state.state_steps[i].numel() != 1 {
            return Err(TorchExtError::Argument {
                call: CALL,
                message: format!("state_step of parameter {i} is not a scalar"),
            });
        }
    }
    if n == 0 {
        return Ok(());
    }
    let mut p = pointers(state.params);
    let mut g = pointers(state.grads);
    let mut m = pointers(state.exp_avgs);
    let mut v = pointers(state.exp_avg_sqs);
    let mut vmax = pointers(state.max_exp_avg_sqs);
    let mut s = pointers(state.state_steps);
    let vmax_ptr = if hp.amsgrad {
        vmax.as_mut_ptr()
    } else {
        std::ptr::null_mut()
    };
    // SAFETY: every pointer array holds `n` live `at::Tensor*` borrowed for the call; the kernel
    // mutates the tensors' storage in place, which tch tensors permit through shared handles.
    unsafe {
        ffi::check(
            CALL,
            ffi::fx_fused_adamw(
                p.as_mut_ptr(),
                g.as_mut_ptr(),
                m.as_mut_ptr(),
                v.as_mut_ptr(),
                vmax_ptr,
                s.as_mut_ptr(),
                n,
                hp.lr,
                hp.beta1,
                hp.beta2,
                hp.weight_decay,
                hp.eps,
                i32::from(hp.amsgrad),
                i32::from(hp.maximize),
            ),
        )
    }
}
