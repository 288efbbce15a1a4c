//! Small building blocks: linear layers, RMSNorm, the GELU(tanh) MLP, parameter-free LayerNorm.

use crate::builder::{ParamInit, Scope};
use crate::error::Result;
use tch::{nn, Kind, TchError, Tensor};

/// `y = x W^T (+ b)`, weight `[out, in]` at `<scope>.weight`, bias at `<scope>.bias`. The one
/// linear layer of the workspace: the backbone builds it through a [`Scope`] with its
/// initialisation, the frozen networks of `flowscale-encoders` through [`Linear::new`].
#[derive(Debug)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// A layer under `path` whose parameters start at zero (with or without bias): for networks
    /// whose weights are loaded from a checkpoint.
    pub fn new(
        path: &nn::Path,
        in_dim: i64,
        out_dim: i64,
        bias: bool,
    ) -> std::result::Result<Self, TchError> {
        let zero = nn::Init::Const(0.0);
        Ok(Linear {
            weight: path.f_var("weight", &[out_dim, in_dim], zero)?,
            bias: if bias {
                Some(path.f_var("bias", &[out_dim], zero)?)
            } else {
                None
            },
        })
    }

    /// A layer with bias under `scope`, initialised for training from scratch.
    pub(crate) fn with_init(
        scope: &Scope,
        in_dim: i64,
        out_dim: i64,
        weight_init: ParamInit,
        bias_init: ParamInit,
    ) -> Result<Self> {
        Ok(Linear {
            weight: scope.param("weight", &[out_dim, in_dim], weight_init)?,
            bias: Some(scope.param("bias", &[out_dim], bias_init)?),
        })
    }

    /// Xavier-uniform weight, zero bias: the default for training from scratch.
    pub(crate) fn xavier(scope: &Scope, in_dim: i64, out_dim: i64) -> Result<Self> {
        Self::with_init(
            scope,
            in_dim,
            out_dim,
            ParamInit::XavierUniform,
            ParamInit::Zeros,
        )
    }

    /// Zero weight and bias (adaLN-Zero modulations, the final projection).
    pub(crate) fn zeros(scope: &Scope, in_dim: i64, out_dim: i64) -> Result<Self> {
        Self::with_init(scope, in_dim, out_dim, ParamInit::Zeros, ParamInit::Zeros)
    }

    /// `x W^T (+ b)`; torch errors come back as they are, for the caller's error type.
    pub fn forward(&self, x: &Tensor) -> std::result::Result<Tensor, TchError> {
        x.f_linear(&self.weight, self.bias.as_ref())
    }

    /// Several layers on the same input as one matrix product (their weights stacked along
    /// the output dimension), split back into each layer's output. Eager PyTorch runs the
    /// q, k and v projections as three products; one wider product reads `x` once and keeps
    /// the matrix unit busier (measured in docs/benchmarks.md). The parameters stay separate
    /// tensors at their checkpoint keys; the stacking is a copy of the weights per call, small
    /// next to the product when `x` has many rows (tokens), so this is for projections of token
    /// sequences, not of the `[B, H]` conditioning vector (there the copy dominates).
    pub(crate) fn forward_fused(layers: &[&Linear], x: &Tensor) -> Result<Vec<Tensor>> {
        if let [one] = layers {
            return Ok(vec![one.forward(x)?]);
        }
        let weights: Vec<&Tensor> = layers.iter().map(|l| &l.weight).collect();
        let sizes: Vec<i64> = weights.iter().map(|w| w.size()[0]).collect();
        let biases: Option<Vec<&Tensor>> = layers.iter().map(|l| l.bias.as_ref()).collect();
        let bias = match biases {
            Some(b) => Some(Tensor::f_cat(&b, 0)?),
            None if layers.iter().all(|l| l.bias.is_none()) => None,
            None => {
                return Err(crate::error::ModelError::Config(
                    "fused linear layers must all have a bias or none".into(),
                ))
            }
        };
        let out = x.f_linear(&Tensor::f_cat(&weights, 0)?, bias.as_ref())?;
        Ok(out.f_split_with_sizes(&sizes, -1)?)
    }
}

/// RMSNorm over the last dim with a learnable scale (`<scope>.weight`), statistics in at least
/// fp32 (half-precision inputs are upcast; fp64 stays fp64).
#[derive(Debug)]
pub(crate) struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    pub(crate) fn new(scope: &Scope, dim: i64, eps: f64) -> Result<Self> {
        Ok(RmsNorm {
            weight: scope.param("weight", &[dim], ParamInit::Ones)?,
            eps,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let stat_kind = match x.kind() {
            Kind::Half | Kind::BFloat16 => Kind::Float,
            k => k,
        };
        let x32 = x.f_to_kind(stat_kind)?;
        let var = x32
            .f_square()?
            .f_mean_dim(Some([-1i64].as_slice()), true, stat_kind)?;
        let normed = x32.f_mul(&var.f_add_scalar(self.eps)?.f_rsqrt()?)?;
        Ok(normed.f_to_kind(x.kind())?.f_mul(&self.weight)?)
    }
}

/// LayerNorm over the last dim without affine parameters.
pub(crate) fn layer_norm(x: &Tensor, eps: f64) -> Result<Tensor> {
    let dim = x.size().last().copied().unwrap_or(1);
    Ok(x.f_layer_norm(
        [dim].as_slice(),
        None::<&Tensor>,
        None::<&Tensor>,
        eps,
        true,
    )?)
}

/// `x (1 + scale) + shift` with per-sample `[B, H]` modulations broadcast over tokens.
pub(crate) fn modulate(x: &Tensor, shift: &Tensor, scale: &Tensor) -> Result<Tensor> {
    Ok(x.f_mul(&scale.f_unsqueeze(1)?.f_add_scalar(1.0)?)?
        .f_add(&shift.f_unsqueeze(1)?)?)
}

/// The transformer MLP: Linear(H, 4H) -> GELU(tanh) -> Linear(4H, H), keys `net.0.proj`, `net.2`.
#[derive(Debug)]
pub(crate) struct FeedForward {
    fc1: Linear,
    fc2: Linear,
}

impl FeedForward {
    pub(crate) fn new(scope: &Scope, dim: i64) -> Result<Self> {
        let net = scope.sub("net");
        Ok(FeedForward {
            fc1: Linear::xavier(&net.sub(0).sub("proj"), dim, 4 * dim)?,
            fc2: Linear::xavier(&net.sub(2), 4 * dim, dim)?,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.fc1.forward(x)?.f_gelu("tanh")?;
        Ok(self.fc2.forward(&h)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn, Device, Kind};

    /// The fused product equals the separate layers' outputs and gradients (fp64: to rounding;
    /// fp32: 1e-5), with and without bias, and refuses a mix of the two.
    #[test]
    fn fused_layers_equal_separate_ones() {
        for kind in [Kind::Double, Kind::Float] {
            tch::manual_seed(11);
            let vs = nn::VarStore::new(Device::Cpu);
            let scope = Scope::store(vs.root());
            let layers: Vec<Linear> = [5, 7, 3]
                .iter()
                .enumerate()
                .map(|(i, &out)| {
                    Linear::with_init(
                        &scope.sub(format!("l{i}")),
                        4,
                        out,
                        ParamInit::XavierUniform,
                        ParamInit::Normal(0.3),
                    )
                    .unwrap()
                })
                .collect();
            let mut vs = vs;
            vs.set_kind(kind);
            let refs: Vec<&Linear> = layers.iter().collect();
            let x = Tensor::randn([2, 6, 4], (kind, Device::Cpu)).set_requires_grad(true);
            let fused = Linear::forward_fused(&refs, &x).unwrap();
            let w = Tensor::randn([2, 6, 15], (kind, Device::Cpu));
            let surrogate = |outs: &[Tensor]| (Tensor::cat(outs, -1) * &w).sum(kind);
            let grads = |loss: Tensor| {
                let vars: Vec<Tensor> = vs.trainable_variables();
                let mut inputs = vec![x.shallow_clone()];
                inputs.extend(vars);
                Tensor::run_backward(&[loss], &inputs, false, false)
            };
            let separate: Vec<Tensor> = refs.iter().map(|l| l.forward(&x).unwrap()).collect();
            let tol = if kind == Kind::Double { 1e-12 } else { 1e-5 };
            for (a, b) in fused.iter().zip(&separate) {
                assert_eq!(a.size(), b.size());
                assert!((a - b).abs().max().double_value(&[]) < tol);
            }
            let (gf, gs) = (grads(surrogate(&fused)), grads(surrogate(&separate)));
            for (a, b) in gf.iter().zip(&gs) {
                assert!((a - b).abs().max().double_value(&[]) < tol);
            }
        }
        let vs = nn::VarStore::new(Device::Cpu);
        let scope = Scope::store(vs.root());
        let with_bias = Linear::xavier(&scope.sub("a"), 4, 2).unwrap();
        let without = Linear::new(&vs.root().sub("b"), 4, 2, false).unwrap();
        let x = Tensor::ones([1, 4], (Kind::Float, Device::Cpu));
        let e = Linear::forward_fused(&[&with_bias, &without], &x).unwrap_err();
        assert!(e.to_string().contains("all have a bias or none"), "{e}");
        assert_eq!(
            Linear::forward_fused(&[&without, &without], &x).unwrap()[1].size(),
            [1, 2]
        );
    }
}
