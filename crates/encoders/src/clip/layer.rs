//! The CLIP encoder layer shared by the text and vision transformers (Hugging Face
//! `CLIPEncoderLayer` keys: `layer_norm1`, `self_attn.{q,k,v,out}_proj`, `layer_norm2`,
//! `mlp.fc{1,2}`): pre-norm attention and MLP with residuals. The text tower attends causally,
//! the vision tower over all positions.

use crate::error::Result;
use crate::nn::{merge_heads, split_heads, Activation, LayerNorm, Linear};
use tch::{nn, Tensor};

#[derive(Debug)]
pub(crate) struct EncoderLayer {
    norm1: LayerNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

impl EncoderLayer {
    /// A layer of width `hidden` and MLP width `intermediate` under `p`.
    pub(crate) fn new(p: &nn::Path, hidden: i64, intermediate: i64, eps: f64) -> Result<Self> {
        let h = hidden;
        let att = p / "self_attn";
        let mlp = p / "mlp";
        Ok(EncoderLayer {
            norm1: LayerNorm::new(&(p / "layer_norm1"), h, eps)?,
            q: Linear::new(&(&att / "q_proj"), h, h, true)?,
            k: Linear::new(&(&att / "k_proj"), h, h, true)?,
            v: Linear::new(&(&att / "v_proj"), h, h, true)?,
            out: Linear::new(&(&att / "out_proj"), h, h, true)?,
            norm2: LayerNorm::new(&(p / "layer_norm2"), h, eps)?,
            fc1: Linear::new(&(&mlp / "fc1"), h, intermediate, true)?,
            fc2: Linear::new(&(&mlp / "fc2"), intermediate, h, true)?,
        })
    }

    /// `x` `[B, L, H]` through the layer with `heads` attention heads.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        heads: i64,
        act: Activation,
        causal: bool,
    ) -> Result<Tensor> {
        let h = self.norm1.forward(x)?;
        let q = split_heads(&self.q.forward(&h)?, heads)?;
        let k = split_heads(&self.k.forward(&h)?, heads)?;
        let v = split_heads(&self.v.forward(&h)?, heads)?;
        let a = Tensor::f_scaled_dot_product_attention(
            &q,
            &k,
            &v,
            None::<&Tensor>,
            0.0,
            causal,
            None,
            false,
        )?;
        let x = x.f_add(&self.out.forward(&merge_heads(&a)?)?)?;
        let h = act.apply(&self.fc1.forward(&self.norm2.forward(&x)?)?)?;
        Ok(x.f_add(&self.fc2.forward(&h)?)?)
    }
}
