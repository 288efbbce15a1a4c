//! Captions as conditioning: each class label has a caption, encoded once by a frozen text
//! encoder (`flowscale-encoders`); `encode` looks the label's encoding up and zeroes dropped
//! sources. MiniLM gives one source; the SD3 stack three (CLIP-L, CLIP-G, T5), dropped
//! independently and combined as SD3 does (docs/protocol.md section 6).

use crate::cond_input::CondInput;
use crate::conditioning::{labels_of, Conditioning, ConditioningProvider};
use crate::error::{Result, TrainError};
use flowscale_encoders::text::sd3::{combine, ClipPart, Sd3Dims, Sd3Parts, SOURCES};
use flowscale_encoders::text::TextEncoder;
use tch::{Device, Kind, Tensor};

#[derive(Debug)]
enum Tables {
    /// `[C, L, D]` and `[C, P]`.
    Single { context: Tensor, pooled: Tensor },
    /// Per-class outputs of each present SD3 encoder.
    Sd3 { parts: Sd3Parts, dims: Sd3Dims },
}

/// Encoded class captions behind the trainer's [`ConditioningProvider`] interface.
#[derive(Debug)]
pub struct CaptionConditioning {
    tables: Tables,
    classes: i64,
    device: Device,
}

fn on(t: Tensor, device: Device) -> Result<Tensor> {
    Ok(t.f_to_kind(Kind::Float)?.f_to_device(device)?)
}

impl CaptionConditioning {
    /// Encodes `captions` (index = class label) with `encoder` in batches of `batch_size`,
    /// keeping the results on `device`.
    pub fn new(
        encoder: &TextEncoder,
        captions: &[&str],
        batch_size: usize,
        device: Device,
    ) -> Result<Self> {
        if captions.is_empty() {
            return Err(TrainError::Invalid(
                "caption conditioning needs at least one caption".into(),
            ));
        }
        let tables = match encoder {
            TextEncoder::MiniLm(_) => {
                let c = encoder.encode_batched(captions, batch_size)?;
                Tables::Single {
                    context: on(c.context, device)?,
                    pooled: on(c.pooled, device)?,
                }
            }
            TextEncoder::Sd3(stack) => {
                let mut chunks = Vec::new();
                for chunk in captions.chunks(batch_size.max(1)) {
                    chunks.push(stack.parts(chunk)?);
                }
                let cat =
                    |ts: Vec<Tensor>| -> Result<Tensor> { on(Tensor::f_cat(&ts, 0)?, device) };
                let clip =
                    |get: &dyn Fn(&Sd3Parts) -> Option<&ClipPart>| -> Result<Option<ClipPart>> {
                        if get(&chunks[0]).is_none() {
                            return Ok(None);
                        }
                        let hidden = chunks
                            .iter()
                            .filter_map(|p| get(p).map(|c| c.hidden.shallow_clone()))
                            .collect();
                        let pooled = chunks
                            .iter()
                            .filter_map(|p| get(p).map(|c| c.pooled.shallow_clone()))
                            .collect();
                        Ok(Some(ClipPart {
                            hidden: cat(hidden)?,
                            pooled: cat(pooled)?,
                        }))
                    };
                let parts = Sd3Parts {
                    clip_l: clip(&|p| p.clip_l.as_ref())?,
                    clip_g: clip(&|p| p.clip_g.as_ref())?,
                    t5: match chunks[0].t5 {
                        None => None,
                        Some(_) => Some(cat(chunks
                            .iter()
                            .filter_map(|p| p.t5.as_ref().map(Tensor::shallow_clone))
                            .collect())?),
                    },
                };
                Tables::Sd3 {
                    parts,
                    dims: stack.dims,
                }
            }
        };
        Ok(Self {
            tables,
            classes: captions.len() as i64,
            device,
        })
    }

    pub fn classes(&self) -> i64 {
        self.classes
    }
}

fn select(t: &Tensor, labels: &Tensor) -> Result<Tensor> {
    Ok(t.f_index_select(0, labels)?)
}

impl ConditioningProvider for CaptionConditioning {
    fn source_names(&self) -> Vec<String> {
        match self.tables {
            Tables::Single { .. } => vec!["minilm".into()],
            Tables::Sd3 { .. } => SOURCES.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn encode(&self, input: &CondInput, keep: &[Tensor]) -> Result<Conditioning> {
        let sources = self.source_names().len();
        if keep.len() != sources {
            return Err(TrainError::Invalid(format!(
                "caption conditioning has {sources} source(s), got {} keep masks",
                keep.len()
            )));
        }
        let labels = labels_of(input)?;
        let b = labels.size()[0];
        // Checked here only for host labels, as the class embedding does: reading device
        // labels back would stall every step (and cannot be captured in a CUDA graph), and the
        // data layer has checked them on the host already.
        if b > 0 && labels.device() == Device::Cpu {
            let (lo, hi) = (
                labels.f_min()?.int64_value(&[]),
                labels.f_max()?.int64_value(&[]),
            );
            if lo < 0 || hi >= self.classes {
                return Err(TrainError::Invalid(format!(
                    "labels must be in 0..{}, got {lo}..={hi}",
                    self.classes
                )));
            }
        }
        let labels = labels.f_to_device(self.device)?;
        match &self.tables {
            Tables::Single { context, pooled } => {
                let k = keep[0].f_to_kind(Kind::Float)?.f_to_device(self.device)?;
                Ok(Conditioning {
                    context: select(context, &labels)?.f_mul(&k.f_view([b, 1, 1])?)?,
                    pooled: select(pooled, &labels)?.f_mul(&k.f_view([b, 1])?)?,
                })
            }
            Tables::Sd3 { parts, dims } => {
                let clip = |p: &Option<ClipPart>| -> Result<Option<ClipPart>> {
                    p.as_ref()
                        .map(|c| {
                            Ok(ClipPart {
                                hidden: select(&c.hidden, &labels)?,
                                pooled: select(&c.pooled, &labels)?,
                            })
                        })
                        .transpose()
                };
                let picked = Sd3Parts {
                    clip_l: clip(&parts.clip_l)?,
                    clip_g: clip(&parts.clip_g)?,
                    t5: parts.t5.as_ref().map(|t| select(t, &labels)).transpose()?,
                };
                let keep: Vec<Tensor> = keep
                    .iter()
                    .map(|k| k.f_to_device(self.device))
                    .collect::<std::result::Result<_, _>>()?;
                let c = combine(&picked, dims, Some(&keep), b, Kind::Float, self.device)?;
                Ok(Conditioning {
                    context: c.context,
                    pooled: c.pooled,
                })
            }
        }
    }
}
