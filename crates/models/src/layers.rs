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
