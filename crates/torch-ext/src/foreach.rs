//! ATen's multi-tensor ("foreach") ops that tch does not expose. On CUDA each is one
//! multi-tensor-apply kernel per device and dtype instead of one launch per tensor (what
//! PyTorch's `torch._foreach_lerp_` gives an EMA of hundreds of parameters); on the CPU ATen runs
//! the same per-tensor loop, so results are identical to the per-tensor op there.

use tch::Tensor;

use crate::{ffi, Result, TorchExtError};

/// `selves[i] <- selves[i] + weight * (ends[i] - selves[i])` for every pair, in place (call it
/// under `tch::no_grad`). The lists must have the same length and each pair the same shape.
pub fn foreach_lerp_(selves: &[Tensor], ends: &[Tensor], weight: f64) -> Result<()> {
    const CALL: &str = "foreach_lerp_";
    if selves.len() != ends.len() {
        return Err(TorchExtError::Argument {
            call: CALL,
            message: format!("{} tensors to update, {} targets", selves.len(), ends.len()),
        });
    }
    for (i, (a, b)) in selves.iter().zip(ends).enumerate() {
        if a.size() != b.size() {
            return Err(TorchExtError::Argument {
                call: CALL,
                message: format!(
                    "tensor {i}: shape {:?}, its target {:?}",
                    a.size(),
                    b.size()
                ),
            });
        }
    }
    if selves.is_empty() {
        return Ok(());
    }
    let ptrs = |ts: &[Tensor]| -> Vec<ffi::FxTensor> {
        ts.iter().map(|t| t.as_ptr() as ffi::FxTensor).collect()
    };
    let (mut a, mut b) = (ptrs(selves), ptrs(ends));
    // SAFETY: the pointers are live tch tensors for the duration of the call.
    unsafe {
        ffi::check(
            CALL,
            ffi::fx_foreach_lerp_scalar(a.as_mut_ptr(), b.as_mut_ptr(), a.len(), weight),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn equals_the_per_tensor_lerp_and_checks_its_lists() {
        tch::manual_seed(3);
        let shapes: [&[i64]; 3] = [&[4, 5], &[7], &[2, 3, 2]];
        let avg: Vec<Tensor> = shapes
            .iter()
            .map(|s| Tensor::randn(*s, (Kind::Float, Device::Cpu)))
            .collect();
        let target: Vec<Tensor> = shapes
            .iter()
            .map(|s| Tensor::randn(*s, (Kind::Float, Device::Cpu)))
            .collect();
        let start: Vec<Tensor> = avg.iter().map(Tensor::copy).collect();
        let mut want: Vec<Tensor> = avg.iter().map(Tensor::copy).collect();
        for (w, t) in want.iter_mut().zip(&target) {
            let _ = w.lerp_(t, 0.01);
        }
        // The reference moved, so equality with it is not equality with a no-op.
        assert!(want.iter().zip(&start).all(|(w, s)| !w.equal(s)));
        foreach_lerp_(&avg, &target, 0.01).unwrap();
        for (a, w) in avg.iter().zip(&want) {
            assert!(a.equal(w));
        }
        let e = foreach_lerp_(&avg[..2], &target, 0.5)
            .unwrap_err()
            .to_string();
        assert!(e.contains("2 tensors to update, 3 targets"), "{e}");
        let e = foreach_lerp_(&avg[..1], &target[1..2], 0.5)
            .unwrap_err()
            .to_string();
        assert!(e.contains("tensor 0: shape [4, 5], its target [7]"), "{e}");
    }
}
