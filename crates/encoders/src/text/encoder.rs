//! A text encoder chosen by a [`TextEncoderConfig`]: prompts in, [`TextConditioning`] out.

use crate::error::Result;
use crate::text::bert::MiniLm;
use crate::text::clip::{ClipText, ClipTokenizer};
use crate::text::conditioning::TextConditioning;
use crate::text::config::{ClipSection, EncoderKind, Sd3Section, TextEncoderConfig};
use crate::text::hf_tokenizer::HfTokenizer;
use crate::text::sd3::{ClipSource, Sd3Dims, Sd3TextStack, T5Source};
use crate::text::source_span::TextSourceSpan;
use crate::text::t5::T5Encoder;
use tch::{Device, Kind, Tensor};

/// all-MiniLM-L6-v2 as a conditioning source: context = token states cut or zero-padded to
/// `tokens` (positions after the text are zero, so the padding length does not matter),
/// pooled = the sentence embedding.
#[derive(Debug)]
pub struct MiniLmText {
    pub model: MiniLm,
    pub tokens: usize,
}

impl MiniLmText {
    pub fn width(&self) -> i64 {
        self.model.width()
    }

    pub fn encode(&self, prompts: &[&str]) -> Result<TextConditioning> {
        let out = self.model.encode(prompts)?;
        let len = out.tokens.size()[1];
        let n = self.tokens as i64;
        let mask = out.mask.f_to_kind(out.tokens.kind())?.f_unsqueeze(-1)?;
        let ctx = out.tokens.f_mul(&mask)?;
        let context = if len >= n {
            ctx.f_narrow(1, 0, n)?
        } else {
            ctx.f_constant_pad_nd([0, 0, 0, n - len].as_slice())?
        };
        Ok(TextConditioning {
            context,
            pooled: out.embedding,
        })
    }
}

/// The encoders a config can select.
#[derive(Debug)]
pub enum TextEncoder {
    MiniLm(Box<MiniLmText>),
    Sd3(Box<Sd3TextStack>),
}

fn clip_source(c: &ClipSection, kind: Kind, device: Device) -> Result<ClipSource> {
    Ok(ClipSource {
        model: ClipText::load(&c.path, kind, device)?,
        tokenizer: ClipTokenizer::from_file(&c.vocab, 77, c.padding)?,
        project_pooled: c.project_pooled,
    })
}

fn sd3_stack(s: &Sd3Section, kind: Kind, device: Device) -> Result<Sd3TextStack> {
    let clip_l = s
        .clip_l
        .as_ref()
        .map(|c| clip_source(c, kind, device))
        .transpose()?;
    let clip_g = s
        .clip_g
        .as_ref()
        .map(|c| clip_source(c, kind, device))
        .transpose()?;
    let t5 =
        s.t5.as_ref()
            .map(|t| {
                Ok::<_, crate::EncoderError>(T5Source {
                    model: T5Encoder::load(&t.path, kind, device)?,
                    tokenizer: HfTokenizer::from_file(&t.tokenizer, t.tokens)?,
                    tokens: t.tokens,
                })
            })
            .transpose()?;
    // Absent encoders take SD3's shapes; present ones their own.
    let mut dims = Sd3Dims::SD3;
    dims.context_width = s.context_width;
    if let Some(c) = &clip_l {
        let cfg = c.model.model.config();
        dims.clip_l_width = cfg.hidden_size;
        dims.clip_l_pooled = if c.project_pooled {
            cfg.projection_dim
        } else {
            cfg.hidden_size
        };
    }
    if let Some(c) = &clip_g {
        let cfg = c.model.model.config();
        dims.clip_g_width = cfg.hidden_size;
        dims.clip_g_pooled = if c.project_pooled {
            cfg.projection_dim
        } else {
            cfg.hidden_size
        };
    }
    if let Some(t) = &t5 {
        dims.t5_width = t.model.model.config().d_model;
        dims.t5_tokens = t.tokens as i64;
    } else {
        dims.t5_width = s.context_width;
    }
    Sd3TextStack::new(clip_l, clip_g, t5, dims)
}

impl TextEncoder {
    /// Loads what `cfg` selects on `device`.
    pub fn load(cfg: &TextEncoderConfig, device: Device) -> Result<Self> {
        let kind = cfg.dtype.kind();
        match cfg.encoder {
            EncoderKind::Minilm => {
                let m = cfg.minilm.as_ref().ok_or_else(|| {
                    crate::EncoderError::Input("encoder = \"minilm\" needs [minilm]".into())
                })?;
                let mut model = MiniLm::load(&m.path, device)?;
                model.vs.set_kind(kind);
                Ok(TextEncoder::MiniLm(Box::new(MiniLmText {
                    model,
                    tokens: m.tokens,
                })))
            }
            EncoderKind::Sd3 => {
                let s = cfg.sd3.as_ref().ok_or_else(|| {
                    crate::EncoderError::Input("encoder = \"sd3\" needs [sd3]".into())
                })?;
                Ok(TextEncoder::Sd3(Box::new(sd3_stack(s, kind, device)?)))
            }
        }
    }

    /// Loads the encoder the config file `path` selects.
    pub fn load_file(path: &std::path::Path, device: Device) -> Result<Self> {
        Self::load(&TextEncoderConfig::load(path)?, device)
    }

    /// Context and pooled vectors of `prompts`, fp32.
    pub fn encode(&self, prompts: &[&str]) -> Result<TextConditioning> {
        let c = match self {
            TextEncoder::MiniLm(m) => m.encode(prompts)?,
            TextEncoder::Sd3(s) => s.encode(prompts, None)?,
        };
        c.to_kind(Kind::Float)
    }

    /// Encodes in batches of `batch_size` and concatenates.
    pub fn encode_batched(&self, prompts: &[&str], batch_size: usize) -> Result<TextConditioning> {
        let mut ctx = Vec::new();
        let mut pooled = Vec::new();
        for chunk in prompts.chunks(batch_size.max(1)) {
            let c = self.encode(chunk)?;
            ctx.push(c.context);
            pooled.push(c.pooled);
        }
        Ok(TextConditioning {
            context: Tensor::f_cat(&ctx, 0)?,
            pooled: Tensor::f_cat(&pooled, 0)?,
        })
    }

    /// The independently droppable sources and where each sits in the combined output.
    pub fn source_spans(&self) -> Vec<TextSourceSpan> {
        match self {
            TextEncoder::MiniLm(m) => {
                vec![TextSourceSpan::whole(
                    "minilm",
                    m.tokens as i64,
                    m.width(),
                    m.width(),
                )]
            }
            TextEncoder::Sd3(s) => TextSourceSpan::sd3(&s.dims),
        }
    }

    /// `(context tokens, context width, pooled width)`.
    pub fn shapes(&self) -> (i64, i64, i64) {
        match self {
            TextEncoder::MiniLm(m) => (m.tokens as i64, m.width(), m.width()),
            TextEncoder::Sd3(s) => (
                s.dims.context_tokens(),
                s.dims.context_width,
                s.dims.pooled_width(),
            ),
        }
    }
}
