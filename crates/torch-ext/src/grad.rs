//! Dropping a tensor's gradient: tch's `zero_grad` zeroes `.grad` in place and keeps its memory;
//! a sharded optimiser (ZeRO-2) must free the full gradients once they are reduced into its
//! shard, which is `zero_grad(set_to_none=True)` in PyTorch.

use tch::Tensor;

use crate::{ffi, Result};

/// Makes `t.grad()` undefined, releasing its storage (unless another tensor still shares it).
pub fn clear_grad(t: &Tensor) -> Result<()> {
    // SAFETY: `t` is a live tch tensor for the duration of the call.
    unsafe {
        ffi::check(
            "clear_grad",
            ffi::fx_clear_grad(t.as_ptr() as ffi::FxTensor),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn the_gradient_becomes_undefined_and_the_next_backward_starts_from_zero() {
        let p = Tensor::from_slice(&[1.0f32, 2.0]).set_requires_grad(true);
        (&p * &p).sum(Kind::Float).backward();
        assert!(p.grad().defined());
        clear_grad(&p).unwrap();
        assert!(!p.grad().defined());
        // A fresh gradient, not one accumulated onto the old 2p.
        (&p * 3.0).sum(Kind::Float).backward();
        assert_eq!(Vec::<f32>::try_from(p.grad()).unwrap(), vec![3.0, 3.0]);
    }
}
