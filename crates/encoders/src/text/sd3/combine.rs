//! SD3's combination of three text encoders (docs/protocol.md section 6):
//! `pooled = cat(pooled_L, pooled_G)` and
//! `context = cat_seq(pad_channels(cat(L, G), context_width), T5)`. An absent or dropped encoder
//! contributes zeros of its shape.

use crate::error::{EncoderError, Result};
use crate::text::conditioning::TextConditioning;
use tch::{Device, Kind, Tensor};

/// Widths and token counts of the three sources and of the combined context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sd3Dims {
    /// CLIP token count (77).
    pub clip_tokens: i64,
    /// CLIP-L hidden width (768) and pooled width (768).
    pub clip_l_width: i64,
    pub clip_l_pooled: i64,
    /// CLIP-G hidden width (1280) and pooled width (1280).
    pub clip_g_width: i64,
    pub clip_g_pooled: i64,
    /// T5 token count (77) and width (4096).
    pub t5_tokens: i64,
    pub t5_width: i64,
    /// Width of the combined context (4096): CLIP channels are zero-padded to it.
    pub context_width: i64,
}

impl Sd3Dims {
    /// SD3's: 77 + 77 tokens of 4096, pooled 768 + 1280 = 2048.
    pub const SD3: Sd3Dims = Sd3Dims {
        clip_tokens: 77,
        clip_l_width: 768,
        clip_l_pooled: 768,
        clip_g_width: 1280,
        clip_g_pooled: 1280,
        t5_tokens: 77,
        t5_width: 4096,
        context_width: 4096,
    };

    pub fn pooled_width(&self) -> i64 {
        self.clip_l_pooled + self.clip_g_pooled
    }

    pub fn context_tokens(&self) -> i64 {
        self.clip_tokens + self.t5_tokens
    }

    pub fn validate(&self) -> Result<()> {
        if self.clip_l_width + self.clip_g_width > self.context_width {
            return Err(EncoderError::Input(format!(
                "CLIP widths {} + {} exceed the context width {}",
                self.clip_l_width, self.clip_g_width, self.context_width
            )));
        }
        if self.t5_width != self.context_width {
            return Err(EncoderError::Input(format!(
                "T5 width {} differs from the context width {}",
                self.t5_width, self.context_width
            )));
        }
        Ok(())
    }
}

/// Outputs of one CLIP encoder for a batch.
#[derive(Debug)]
pub struct ClipPart {
    /// `[B, clip_tokens, width]`.
    pub hidden: Tensor,
    /// `[B, pooled]`.
    pub pooled: Tensor,
}

/// The three sources of a batch; `None` is an absent encoder (zeros).
#[derive(Debug, Default)]
pub struct Sd3Parts {
    pub clip_l: Option<ClipPart>,
    pub clip_g: Option<ClipPart>,
    /// `[B, t5_tokens, t5_width]`.
    pub t5: Option<Tensor>,
}

/// Index of each source in keep masks.
pub const SOURCES: [&str; 3] = ["clip_l", "clip_g", "t5"];

fn check(name: &str, t: &Tensor, want: &[i64]) -> Result<()> {
    if t.size() != want {
        return Err(EncoderError::Input(format!(
            "SD3 {name} has shape {:?}, expected {want:?}",
            t.size()
        )));
    }
    Ok(())
}

/// `t` times the per-sample keep mask `[B]` (1 keep, 0 zeros), or `t` when there is no mask.
fn masked(t: &Tensor, keep: Option<&Tensor>) -> Result<Tensor> {
    match keep {
        None => Ok(t.shallow_clone()),
        Some(k) => {
            let mut shape = vec![t.size()[0]];
            shape.extend(std::iter::repeat_n(1, t.dim() - 1));
            Ok(t.f_mul(&k.f_to_kind(t.kind())?.f_view(shape.as_slice())?)?)
        }
    }
}

/// Combines `parts` for a batch of `batch` prompts. `keep`, if given, holds one `[B]` mask per
/// source in [`SOURCES`] order. The result is in `kind` on `device`.
pub fn combine(
    parts: &Sd3Parts,
    dims: &Sd3Dims,
    keep: Option<&[Tensor]>,
    batch: i64,
    kind: Kind,
    device: Device,
) -> Result<TextConditioning> {
    dims.validate()?;
    if let Some(k) = keep {
        if k.len() != SOURCES.len() {
            return Err(EncoderError::Input(format!(
                "SD3 conditioning has 3 sources, got {} keep masks",
                k.len()
            )));
        }
    }
    let keep_of = |i: usize| keep.map(|k| &k[i]);
    let zeros = |shape: &[i64]| Tensor::f_zeros(shape, (kind, device));
    let clip = |part: &Option<ClipPart>, name: &str, width: i64, pooled: i64, i: usize| {
        let hidden_shape = [batch, dims.clip_tokens, width];
        match part {
            None => Ok::<_, EncoderError>((zeros(&hidden_shape)?, zeros(&[batch, pooled])?)),
            Some(p) => {
                check(&format!("{name} hidden states"), &p.hidden, &hidden_shape)?;
                check(&format!("{name} pooled"), &p.pooled, &[batch, pooled])?;
                Ok((
                    masked(&p.hidden.f_to_kind(kind)?, keep_of(i))?,
                    masked(&p.pooled.f_to_kind(kind)?, keep_of(i))?,
                ))
            }
        }
    };
    let (l_hidden, l_pooled) = clip(
        &parts.clip_l,
        "CLIP-L",
        dims.clip_l_width,
        dims.clip_l_pooled,
        0,
    )?;
    let (g_hidden, g_pooled) = clip(
        &parts.clip_g,
        "CLIP-G",
        dims.clip_g_width,
        dims.clip_g_pooled,
        1,
    )?;
    let t5_shape = [batch, dims.t5_tokens, dims.t5_width];
    let t5 = match &parts.t5 {
        None => zeros(&t5_shape)?,
        Some(t) => {
            check("T5 states", t, &t5_shape)?;
            masked(&t.f_to_kind(kind)?, keep_of(2))?
        }
    };
    let clip_width = dims.clip_l_width + dims.clip_g_width;
    let clip_ctx = Tensor::f_cat(&[l_hidden, g_hidden], -1)?
        .f_constant_pad_nd([0, dims.context_width - clip_width].as_slice())?;
    Ok(TextConditioning {
        context: Tensor::f_cat(&[clip_ctx, t5], 1)?,
        pooled: Tensor::f_cat(&[l_pooled, g_pooled], -1)?,
    })
}
