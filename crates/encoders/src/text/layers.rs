//! Building blocks shared by the text encoders, with Hugging Face parameter names.

use crate::error::Result;
use tch::nn::{Init, Path};
use tch::{Kind, Tensor};

/// Parameters start at zero; every model here is frozen and loaded from a checkpoint (tests that
/// need random weights re-randomise them, see [`crate::text::frozen::randomize`]).
const INIT: Init = Init::Const(0.0);

/// `y = x W^T (+ b)`, weight `[out, in]` at `<path>.weight`, bias at `<path>.bias`.
#[derive(Debug)]
pub(crate) struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    pub(crate) fn new(path: &Path, in_dim: i64, out_dim: i64, bias: bool) -> Result<Self> {
        Ok(Linear {
            weight: path.f_var("weight", &[out_dim, in_dim], INIT)?,
            bias: if bias {
                Some(path.f_var("bias", &[out_dim], INIT)?)
            } else {
                None
            },
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.f_linear(&self.weight, self.bias.as_ref())?)
    }
}

/// LayerNorm over the last dim with `weight` and `bias`.
#[derive(Debug)]
pub(crate) struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    pub(crate) fn new(path: &Path, dim: i64, eps: f64) -> Result<Self> {
        Ok(LayerNorm {
            weight: path.f_var("weight", &[dim], Init::Const(1.0))?,
            bias: path.f_var("bias", &[dim], INIT)?,
            eps,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dim = self.weight.size()[0];
        Ok(x.f_layer_norm(
            [dim].as_slice(),
            Some(&self.weight),
            Some(&self.bias),
            self.eps,
            true,
        )?)
    }
}

/// An embedding table `[num, dim]` at `<path>.weight`.
#[derive(Debug)]
pub(crate) struct Embedding {
    pub(crate) weight: Tensor,
}

impl Embedding {
    pub(crate) fn new(path: &Path, num: i64, dim: i64) -> Result<Self> {
        Ok(Embedding {
            weight: path.f_var("weight", &[num, dim], INIT)?,
        })
    }

    /// Looks up i64 ids of any shape.
    pub(crate) fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        Ok(Tensor::f_embedding(&self.weight, ids, -1, false, false)?)
    }
}

/// The activations named by Hugging Face `hidden_act` strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `gelu`: exact (erf) GELU.
    Gelu,
    /// `gelu_new` / `gelu_pytorch_tanh`: the tanh approximation.
    GeluTanh,
    /// `quick_gelu`: `x sigmoid(1.702 x)` (OpenAI CLIP).
    QuickGelu,
    Relu,
}

impl Activation {
    /// Parses a Hugging Face activation name.
    pub fn from_hf(name: &str) -> Option<Self> {
        match name {
            "gelu" => Some(Activation::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Activation::GeluTanh),
            "quick_gelu" => Some(Activation::QuickGelu),
            "relu" => Some(Activation::Relu),
            _ => None,
        }
    }

    pub(crate) fn apply(self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Activation::Gelu => x.f_gelu("none")?,
            Activation::GeluTanh => x.f_gelu("tanh")?,
            Activation::QuickGelu => x.f_mul(&x.f_mul_scalar(1.702)?.f_sigmoid()?)?,
            Activation::Relu => x.f_relu()?,
        })
    }
}

/// `[B, L, H·D]` -> `[B, H, L, D]`.
pub(crate) fn split_heads(x: &Tensor, heads: i64) -> Result<Tensor> {
    let s = x.size();
    Ok(x.f_view([s[0], s[1], heads, s[2] / heads].as_slice())?
        .f_transpose(1, 2)?)
}

/// `[B, H, L, D]` -> `[B, L, H·D]`.
pub(crate) fn merge_heads(x: &Tensor) -> Result<Tensor> {
    let s = x.size();
    Ok(x.f_transpose(1, 2)?
        .f_contiguous()?
        .f_view([s[0], s[2], s[1] * s[3]].as_slice())?)
}

/// Additive attention bias `[B, 1, 1, L]` from a key mask `[B, L]` (1 attend, 0 ignore): 0 where
/// attended, the dtype's lowest value elsewhere (what Hugging Face adds).
pub(crate) fn key_mask_bias(mask: &Tensor, kind: Kind) -> Result<Tensor> {
    let s = mask.size();
    let lowest = match kind {
        Kind::Half => -65504.0,
        Kind::BFloat16 => -3.3895313892515355e38,
        Kind::Double => f64::MIN,
        _ => f32::MIN as f64,
    };
    Ok(mask
        .f_to_kind(kind)?
        .f_neg()?
        .f_add_scalar(1.0)?
        .f_mul_scalar(lowest)?
        .f_view([s[0], 1, 1, s[1]].as_slice())?)
}
