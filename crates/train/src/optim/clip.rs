//! Global gradient-norm clipping without a host synchronisation: the norm stays a device scalar
//! and the scale `min(1, max / (norm + 1e-6))` multiplies the gradients on the device (what
//! `torch.nn.utils.clip_grad_norm_` computes).

use crate::error::Result;
use tch::{Kind, Tensor};

/// The global L2 norm of the gradients of `params` as a float32 0-d tensor (no sync).
pub fn grad_norm(params: &[Tensor]) -> Result<Option<Tensor>> {
    let norms: Vec<Tensor> = params
        .iter()
        .filter_map(|p| {
            let g = p.grad();
            g.defined()
                .then(|| g.f_to_kind(Kind::Float).and_then(|g| g.f_norm()))
        })
        .collect::<std::result::Result<_, _>>()?;
    if norms.is_empty() {
        return Ok(None);
    }
    Ok(Some(Tensor::f_stack(&norms, 0)?.f_norm()?))
}

/// Scales the gradients so their global norm is at most `max_norm`; returns the norm before
/// clipping.
pub fn clip_grad_norm(params: &[Tensor], max_norm: f64) -> Result<Option<Tensor>> {
    let Some(norm) = grad_norm(params)? else {
        return Ok(None);
    };
    let scale = clip_scale(&norm, max_norm)?;
    let _guard = tch::no_grad_guard();
    for p in params {
        let mut g = p.grad();
        if g.defined() {
            let s = scale.f_to_kind(g.kind())?;
            let _ = g.f_mul_(&s)?;
        }
    }
    Ok(Some(norm))
}

/// The factor `min(1, max_norm / (norm + 1e-6))` gradients of global norm `norm` are scaled by.
pub fn clip_scale(norm: &Tensor, max_norm: f64) -> Result<Tensor> {
    Ok(norm
        .f_add_scalar(1e-6)?
        .f_reciprocal()?
        .f_mul_scalar(max_norm)?
        .f_clamp_max(1.0)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_grad(values: &[f32]) -> Tensor {
        let p = Tensor::from_slice(values).set_requires_grad(true);
        (&p * &p).sum(Kind::Float).backward(); // grad = 2p
        p
    }

    #[test]
    fn clips_like_torch() {
        let a = with_grad(&[3.0]); // grad 6
        let b = with_grad(&[4.0, 0.0]); // grad (8, 0)
        let params = [a, b];
        let norm = clip_grad_norm(&params, 5.0).unwrap().unwrap();
        assert!((norm.double_value(&[]) - 10.0).abs() < 1e-5);
        let scale = 5.0 / (10.0 + 1e-6);
        assert!((params[0].grad().double_value(&[0]) - 6.0 * scale).abs() < 1e-5);
        assert!((params[1].grad().double_value(&[0]) - 8.0 * scale).abs() < 1e-5);
        // Below the threshold nothing changes.
        let c = with_grad(&[0.1]);
        clip_grad_norm(std::slice::from_ref(&c), 5.0).unwrap();
        assert!((c.grad().double_value(&[0]) - 0.2).abs() < 1e-7);
    }
}
