//! CLIP score: the cosine between L2-normalised image and text embeddings, on the raw scale
//! (SD3's tables, about 0.2-0.26 for good text-to-image models) and on torchmetrics'
//! `CLIPScore` scale, `max(100 cos, 0)`.

use crate::error::{EncoderError, Result};
use tch::{Kind, Tensor};

/// Row-wise cosines `[B]` of image `[B, P]` and text `[B, P]` embeddings (fp32).
pub fn cosines(image: &Tensor, text: &Tensor) -> Result<Tensor> {
    if image.size() != text.size() || image.dim() != 2 {
        return Err(EncoderError::Input(format!(
            "CLIP score pairs image and text embeddings of one shape [B, P], got {:?} and {:?}",
            image.size(),
            text.size()
        )));
    }
    let i = l2_normalise(&image.f_to_kind(Kind::Float)?)?;
    let t = l2_normalise(&text.f_to_kind(Kind::Float)?)?;
    Ok(i.f_mul(&t)?.f_sum_dim_intlist(-1, false, Kind::Float)?)
}

/// `x / ||x||` over the last dim.
pub fn l2_normalise(x: &Tensor) -> Result<Tensor> {
    let norm = x.f_norm_scalaropt_dim(2.0, [-1i64].as_slice(), true)?;
    Ok(x.f_div(&norm)?)
}

/// torchmetrics' per-sample scale: `max(100 cos, 0)`.
pub fn x100(cosines: &Tensor) -> Result<Tensor> {
    Ok(cosines.f_mul_scalar(100.0)?.f_clamp_min(0.0)?)
}

/// The mean CLIP score over samples, on both scales.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClipScore {
    /// Mean raw cosine.
    pub raw: f64,
    /// Mean of `max(100 cos, 0)` (torchmetrics `CLIPScore`).
    pub x100: f64,
    /// Number of image-text pairs.
    pub n: usize,
}

impl ClipScore {
    /// Averages per-sample cosines `[N]`.
    pub fn from_cosines(cosines: &Tensor) -> Result<Self> {
        let n = cosines.numel();
        if n == 0 {
            return Err(EncoderError::Input("CLIP score of no samples".into()));
        }
        let c = cosines.f_to_kind(Kind::Double)?;
        Ok(ClipScore {
            raw: c.f_mean(Kind::Double)?.f_double_value(&[])?,
            x100: x100(&c)?.f_mean(Kind::Double)?.f_double_value(&[])?,
            n,
        })
    }
}
