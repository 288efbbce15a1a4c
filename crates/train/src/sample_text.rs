//! Per-sample text as conditioning (`conditioning.provider = "text"`): each sample's caption,
//! either precomputed by `flowscale precompute` (the embeddings stored in the shards; no text
//! encoder is loaded) or encoded on the fly by the frozen encoders of the run's text config.
//!
//! Dropout zeroes one source at a time inside the combined embedding, at the place the source
//! occupies ([`TextSourceSpan`]): for SD3 that is exactly what combining with that encoder left
//! out gives (docs/protocol.md section 6), and it works the same on stored embeddings.

use crate::cond_input::{CondInput, TextBatch};
use crate::conditioning::{Conditioning, ConditioningProvider};
use crate::error::{Result, TrainError};
use flowscale_encoders::text::{TextEncoder, TextSourceSpan};
use tch::{Device, Kind, Tensor};

/// Captions encoded at most this many at once on the fly.
const ENCODE_BATCH: usize = 64;

pub struct SampleText {
    spans: Vec<TextSourceSpan>,
    /// For batches that carry captions but no embeddings (and for prompts at inference).
    encoder: Option<TextEncoder>,
    /// `(context tokens, context width, pooled width)`.
    shapes: (i64, i64, i64),
    device: Device,
}

impl std::fmt::Debug for SampleText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SampleText")
            .field("spans", &self.spans)
            .field("encoder", &self.encoder.is_some())
            .field("shapes", &self.shapes)
            .finish()
    }
}

impl SampleText {
    /// Conditioning of `shapes` with sources at `spans`; `encoder` (whose shapes and sources must
    /// be these) encodes batches without embeddings.
    pub fn new(
        spans: Vec<TextSourceSpan>,
        shapes: (i64, i64, i64),
        encoder: Option<TextEncoder>,
        device: Device,
    ) -> Result<Self> {
        let (tokens, width, pooled) = shapes;
        TextSourceSpan::check_all(&spans, tokens, width, pooled)?;
        if let Some(e) = &encoder {
            if e.shapes() != shapes {
                return Err(TrainError::Invalid(format!(
                    "the text encoder gives context {:?} and pooled width, the data's embeddings \
                     {shapes:?}",
                    e.shapes()
                )));
            }
            // Stored embeddings of an older manifest carry one `text` span; what must agree is
            // which sources there are, by name.
            let names = |s: &[TextSourceSpan]| s.iter().map(|x| x.name.clone()).collect::<Vec<_>>();
            let theirs = e.source_spans();
            if names(&theirs) != names(&spans) {
                return Err(TrainError::Invalid(format!(
                    "the text encoder has sources {:?}, the data's embeddings {:?}",
                    names(&theirs),
                    names(&spans)
                )));
            }
        }
        Ok(Self {
            spans,
            encoder,
            shapes,
            device,
        })
    }

    /// Prompts through `encoder` alone, with its own sources and shapes.
    pub fn for_encoder(encoder: TextEncoder, device: Device) -> Result<Self> {
        Self::new(
            encoder.source_spans(),
            encoder.shapes(),
            Some(encoder),
            device,
        )
    }

    /// Context and pooled vectors of `t` in float32 on the device, as fresh tensors (dropout
    /// writes into them).
    fn embed(&self, t: &TextBatch) -> Result<(Tensor, Tensor)> {
        let fresh = |x: &Tensor| -> Result<Tensor> {
            let y = x.f_to_device(self.device)?.f_to_kind(Kind::Float)?;
            // A float32 tensor already on the device is returned as is: copy, never write
            // into the caller's (or the loader's) tensor.
            Ok(if y.data_ptr() == x.data_ptr() {
                y.copy()
            } else {
                y
            })
        };
        if let Some((c, p)) = &t.embedding {
            return Ok((fresh(c)?, fresh(p)?));
        }
        let (Some(captions), Some(encoder)) = (&t.captions, &self.encoder) else {
            return Err(TrainError::Invalid(
                "a text batch without embeddings needs captions and the run's text encoder \
                 (conditioning.text_encoder)"
                    .into(),
            ));
        };
        let refs: Vec<&str> = captions.iter().map(String::as_str).collect();
        let _guard = tch::no_grad_guard();
        let c = encoder.encode_batched(&refs, ENCODE_BATCH)?;
        Ok((fresh(&c.context)?, fresh(&c.pooled)?))
    }
}

impl ConditioningProvider for SampleText {
    fn source_names(&self) -> Vec<String> {
        self.spans.iter().map(|s| s.name.clone()).collect()
    }

    fn encode(&self, input: &CondInput, keep: &[Tensor]) -> Result<Conditioning> {
        let CondInput::Text(t) = input else {
            return Err(TrainError::Invalid(
                "this run conditions on per-sample captions, the batch carries class labels; \
                 set conditioning.provider to \"class_embedding\" or \"captions\""
                    .into(),
            ));
        };
        if keep.len() != self.spans.len() {
            return Err(TrainError::Invalid(format!(
                "text conditioning has {} source(s) {:?}, got {} keep masks",
                self.spans.len(),
                self.source_names(),
                keep.len()
            )));
        }
        let (context, pooled) = self.embed(t)?;
        let b = input.len();
        let (tokens, width, pw) = self.shapes;
        if context.size() != [b, tokens, width] || pooled.size() != [b, pw] {
            return Err(TrainError::Invalid(format!(
                "text embeddings of shape {:?} and {:?}, the model takes [{b}, {tokens}, {width}] \
                 and [{b}, {pw}]",
                context.size(),
                pooled.size()
            )));
        }
        let _guard = tch::no_grad_guard();
        for (span, k) in self.spans.iter().zip(keep) {
            let k = k.f_to_device(self.device)?.f_to_kind(Kind::Float)?;
            let [t0, t1] = span.tokens;
            let [c0, c1] = span.context_channels;
            let _ = context
                .f_narrow(1, t0, t1 - t0)?
                .f_narrow(2, c0, c1 - c0)?
                .f_mul_(&k.f_view([b, 1, 1])?)?;
            if let Some([p0, p1]) = span.pooled_channels {
                let _ = pooled
                    .f_narrow(1, p0, p1 - p0)?
                    .f_mul_(&k.f_view([b, 1])?)?;
            }
        }
        Ok(Conditioning { context, pooled })
    }

    fn text_encoder(&self) -> Option<&TextEncoder> {
        self.encoder.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sd3_like() -> SampleText {
        // Two "CLIP" sources side by side in the first 2 tokens, a "T5" in the last 2.
        let spans = vec![
            TextSourceSpan {
                name: "clip_l".into(),
                tokens: [0, 2],
                context_channels: [0, 2],
                pooled_channels: Some([0, 2]),
            },
            TextSourceSpan {
                name: "clip_g".into(),
                tokens: [0, 2],
                context_channels: [2, 3],
                pooled_channels: Some([2, 5]),
            },
            TextSourceSpan {
                name: "t5".into(),
                tokens: [2, 4],
                context_channels: [0, 4],
                pooled_channels: None,
            },
        ];
        SampleText::new(spans, (4, 4, 5), None, Device::Cpu).unwrap()
    }

    #[test]
    fn a_dropped_source_is_zero_where_it_sits_and_nothing_else_changes() {
        let c = sd3_like();
        let ctx = Tensor::rand([2, 4, 4], (Kind::Float, Device::Cpu)) + 1.0;
        let pooled = Tensor::rand([2, 5], (Kind::Float, Device::Cpu)) + 1.0;
        let input = CondInput::Text(TextBatch {
            captions: None,
            embedding: Some((ctx.to_kind(Kind::Half), pooled.shallow_clone())),
        });
        let ones = Tensor::from_slice(&[1.0f32, 1.0]);
        // Sample 0 drops clip_g, sample 1 drops t5.
        let keep = [
            ones.shallow_clone(),
            Tensor::from_slice(&[0.0f32, 1.0]),
            Tensor::from_slice(&[1.0f32, 0.0]),
        ];
        let out = c.encode(&input, &keep).unwrap();
        let want_ctx = ctx.to_kind(Kind::Half).to_kind(Kind::Float);
        let _ = want_ctx.get(0).narrow(0, 0, 2).narrow(1, 2, 1).fill_(0.0);
        let _ = want_ctx.get(1).narrow(0, 2, 2).fill_(0.0);
        assert!(out.context.equal(&want_ctx));
        let want_pooled = pooled.copy();
        let _ = want_pooled.get(0).narrow(0, 2, 3).fill_(0.0);
        assert!(out.pooled.equal(&want_pooled));
        // The caller's float32 tensor is not written into.
        assert!(pooled.min().double_value(&[]) >= 1.0);
        // Wrong mask count, labels, and text without embeddings or encoder are refused.
        assert!(c.encode(&input, &keep[..2]).is_err());
        assert!(c
            .encode(&CondInput::Labels(Tensor::from_slice(&[0i64])), &keep)
            .is_err());
        let bare = CondInput::Text(TextBatch {
            captions: Some(vec!["a".into(), "b".into()]),
            embedding: None,
        });
        let e = c.encode(&bare, &keep).unwrap_err().to_string();
        assert!(e.contains("text_encoder"), "{e}");
    }
}
