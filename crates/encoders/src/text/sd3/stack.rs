//! The SD3 text stack: CLIP-L/14, OpenCLIP bigG/14 and T5-XXL (each optional) with their
//! tokenizers, run on prompts and combined by [`super::combine`].

use super::combine::{combine, ClipPart, Sd3Dims, Sd3Parts};
use crate::error::{EncoderError, Result};
use crate::text::clip::{ClipText, ClipTokenizer};
use crate::text::conditioning::TextConditioning;
use crate::text::frozen::Frozen;
use crate::text::hf_tokenizer::{HfTokenizer, Padding};
use crate::text::t5::T5Encoder;
use tch::{Kind, Tensor};

/// A CLIP encoder with its tokenizer; `project_pooled` selects `text_embeds` over
/// `pooler_output` as the pooled vector.
#[derive(Debug)]
pub struct ClipSource {
    pub model: Frozen<ClipText>,
    pub tokenizer: ClipTokenizer,
    pub project_pooled: bool,
}

impl ClipSource {
    fn pooled_width(&self) -> i64 {
        let c = self.model.model.config();
        if self.project_pooled {
            c.projection_dim
        } else {
            c.hidden_size
        }
    }

    fn run(&self, prompts: &[&str]) -> Result<ClipPart> {
        let batch = self.tokenizer.encode_batch(prompts);
        let ids = batch.ids.f_to_device(self.model.vs.device())?;
        let out = tch::no_grad(|| self.model.model.forward(&ids))?;
        Ok(ClipPart {
            hidden: out.penultimate,
            pooled: if self.project_pooled {
                out.projected
            } else {
                out.pooled
            },
        })
    }
}

/// The T5 encoder with its tokenizer (padded to `tokens`, run without a mask as SD3 does).
#[derive(Debug)]
pub struct T5Source {
    pub model: Frozen<T5Encoder>,
    pub tokenizer: HfTokenizer,
    pub tokens: usize,
}

impl T5Source {
    fn run(&self, prompts: &[&str]) -> Result<Tensor> {
        let batch = self
            .tokenizer
            .encode_batch(prompts, Padding::Fixed(self.tokens))?;
        let ids = batch.ids.f_to_device(self.model.vs.device())?;
        tch::no_grad(|| self.model.model.forward(&ids, None))
    }
}

/// The three SD3 encoders; an absent one contributes zeros.
#[derive(Debug)]
pub struct Sd3TextStack {
    pub clip_l: Option<ClipSource>,
    pub clip_g: Option<ClipSource>,
    pub t5: Option<T5Source>,
    pub dims: Sd3Dims,
}

impl Sd3TextStack {
    /// Checks that the present encoders produce the shapes `dims` describes.
    pub fn new(
        clip_l: Option<ClipSource>,
        clip_g: Option<ClipSource>,
        t5: Option<T5Source>,
        dims: Sd3Dims,
    ) -> Result<Self> {
        dims.validate()?;
        let mismatch = |what: &str, got: i64, want: i64| {
            EncoderError::Input(format!(
                "SD3 stack: {what} is {got}, the stack expects {want}"
            ))
        };
        for (name, src, width, pooled) in [
            ("CLIP-L", &clip_l, dims.clip_l_width, dims.clip_l_pooled),
            ("CLIP-G", &clip_g, dims.clip_g_width, dims.clip_g_pooled),
        ] {
            if let Some(s) = src {
                let c = s.model.model.config();
                if c.hidden_size != width {
                    return Err(mismatch(
                        &format!("{name} hidden width"),
                        c.hidden_size,
                        width,
                    ));
                }
                if s.pooled_width() != pooled {
                    return Err(mismatch(
                        &format!("{name} pooled width"),
                        s.pooled_width(),
                        pooled,
                    ));
                }
                if c.max_position_embeddings < dims.clip_tokens {
                    return Err(mismatch(
                        &format!("{name} max_position_embeddings"),
                        c.max_position_embeddings,
                        dims.clip_tokens,
                    ));
                }
                if s.tokenizer.context_length as i64 != dims.clip_tokens {
                    return Err(mismatch(
                        &format!("{name} context length"),
                        s.tokenizer.context_length as i64,
                        dims.clip_tokens,
                    ));
                }
            }
        }
        if let Some(t) = &t5 {
            let d = t.model.model.config().d_model;
            if d != dims.t5_width {
                return Err(mismatch("T5 width", d, dims.t5_width));
            }
            if t.tokens as i64 != dims.t5_tokens {
                return Err(mismatch("T5 token count", t.tokens as i64, dims.t5_tokens));
            }
        }
        Ok(Sd3TextStack {
            clip_l,
            clip_g,
            t5,
            dims,
        })
    }

    /// Each present encoder's outputs for `prompts`.
    pub fn parts(&self, prompts: &[&str]) -> Result<Sd3Parts> {
        Ok(Sd3Parts {
            clip_l: self.clip_l.as_ref().map(|s| s.run(prompts)).transpose()?,
            clip_g: self.clip_g.as_ref().map(|s| s.run(prompts)).transpose()?,
            t5: self.t5.as_ref().map(|s| s.run(prompts)).transpose()?,
        })
    }

    /// Context `[B, 154, 4096]` and pooled `[B, 2048]` (for SD3's dims) in fp32 on the device of
    /// the first present encoder (CPU if none); `keep` as in [`combine`].
    pub fn encode(&self, prompts: &[&str], keep: Option<&[Tensor]>) -> Result<TextConditioning> {
        let device = self
            .clip_l
            .as_ref()
            .map(|s| s.model.vs.device())
            .or_else(|| self.clip_g.as_ref().map(|s| s.model.vs.device()))
            .or_else(|| self.t5.as_ref().map(|s| s.model.vs.device()))
            .unwrap_or(tch::Device::Cpu);
        let parts = self.parts(prompts)?;
        let parts = Sd3Parts {
            clip_l: parts.clip_l.map(|p| to_device(p, device)).transpose()?,
            clip_g: parts.clip_g.map(|p| to_device(p, device)).transpose()?,
            t5: parts.t5.map(|t| t.f_to_device(device)).transpose()?,
        };
        combine(
            &parts,
            &self.dims,
            keep,
            prompts.len() as i64,
            Kind::Float,
            device,
        )
    }
}

fn to_device(p: ClipPart, device: tch::Device) -> Result<ClipPart> {
    Ok(ClipPart {
        hidden: p.hidden.f_to_device(device)?,
        pooled: p.pooled.f_to_device(device)?,
    })
}
