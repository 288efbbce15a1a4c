//! Samples into a batch of tensors.

use super::position::SampleId;
use crate::error::{DataError, Result};
use crate::shards::LatentSample;
use std::path::PathBuf;
use tch::{Device, Kind, Tensor};

/// One batch. Latent moments are float32 `[B, C, H, W]`; text embeddings keep their stored
/// dtype (float16 in shards) to halve their host memory, the consumer converts on the device.
#[derive(Debug)]
pub struct LatentBatch {
    pub keys: Vec<String>,
    pub ids: Vec<SampleId>,
    pub mean: Tensor,
    pub std: Tensor,
    /// Moments of the horizontally flipped image, when every sample has them.
    pub flip: Option<(Tensor, Tensor)>,
    /// i64 `[B]`, when the samples are labelled.
    pub labels: Option<Tensor>,
    /// One column per caption field of the samples (every sample has the same fields).
    pub captions: Vec<CaptionColumn>,
    /// Shards skipped as bad while this batch was assembled: their errors, which name them.
    pub skipped: Vec<String>,
}

/// One caption field of a batch.
#[derive(Debug)]
pub struct CaptionColumn {
    pub field: String,
    /// The caption of each sample, when stored.
    pub texts: Option<Vec<String>>,
    /// `context [B, T, D]`, `pooled [B, P]` in their stored dtype, when stored.
    pub embedding: Option<(Tensor, Tensor)>,
}

/// Present in all samples, absent in all, or an error naming the first sample that differs.
fn all_or_none<T>(
    samples: &[(SampleId, LatentSample)],
    shard: &dyn Fn(SampleId) -> PathBuf,
    what: &str,
    get: impl Fn(&LatentSample) -> Option<T>,
) -> Result<Option<Vec<T>>> {
    let first = get(&samples[0].1).is_some();
    let mut out = Vec::with_capacity(samples.len());
    for (id, s) in samples {
        match (get(s), first) {
            (Some(v), true) => out.push(v),
            (None, false) => {}
            (has, _) => {
                let (this, others) = if has.is_some() {
                    ("has", "do not")
                } else {
                    ("has no", "do")
                };
                return Err(DataError::corrupt(
                    &shard(*id),
                    format!(
                        "sample {}: {this} {what}, other samples of the batch {others}",
                        s.key
                    ),
                ));
            }
        }
    }
    Ok(first.then_some(out))
}

fn stack(ts: &[Tensor], kind: Kind, pin: bool) -> Result<Tensor> {
    let t = Tensor::f_stack(ts, 0)?.f_to_kind(kind)?;
    Ok(if pin {
        t.f_pin_memory(Device::Cuda(0))?
    } else {
        t
    })
}

/// Collates `samples` (at least one); `shard_path` names a sample's shard in errors.
pub fn collate(
    samples: Vec<(SampleId, LatentSample)>,
    shard_path: &dyn Fn(SampleId) -> PathBuf,
    pin: bool,
) -> Result<LatentBatch> {
    let mean = stack(
        &samples
            .iter()
            .map(|(_, s)| s.mean.shallow_clone())
            .collect::<Vec<_>>(),
        Kind::Float,
        pin,
    )?;
    let std = stack(
        &samples
            .iter()
            .map(|(_, s)| s.std.shallow_clone())
            .collect::<Vec<_>>(),
        Kind::Float,
        pin,
    )?;
    let flip = match all_or_none(&samples, shard_path, "flipped latent", |s| {
        s.flip
            .as_ref()
            .map(|(m, d)| (m.shallow_clone(), d.shallow_clone()))
    })? {
        Some(pairs) => {
            let (m, d): (Vec<Tensor>, Vec<Tensor>) = pairs.into_iter().unzip();
            Some((stack(&m, Kind::Float, pin)?, stack(&d, Kind::Float, pin)?))
        }
        None => None,
    };
    let labels = match all_or_none(&samples, shard_path, "label", |s| s.label)? {
        Some(l) => {
            let t = Tensor::f_from_slice(&l)?;
            Some(if pin {
                t.f_pin_memory(Device::Cuda(0))?
            } else {
                t
            })
        }
        None => None,
    };
    let fields: Vec<String> = samples[0]
        .1
        .captions
        .iter()
        .map(|c| c.field.clone())
        .collect();
    for (id, s) in &samples {
        if s.captions.len() != fields.len() || s.captions.iter().any(|c| !fields.contains(&c.field))
        {
            let theirs: Vec<&str> = s.captions.iter().map(|c| c.field.as_str()).collect();
            return Err(DataError::corrupt(
                &shard_path(*id),
                format!(
                    "sample {}: caption fields {theirs:?}, other samples of the batch have {fields:?}",
                    s.key
                ),
            ));
        }
    }
    let mut captions = Vec::with_capacity(fields.len());
    for field in fields {
        let texts = all_or_none(&samples, shard_path, &format!("caption {field}"), |s| {
            s.caption(&field).and_then(|c| c.text.clone())
        })?;
        let embedding = match all_or_none(
            &samples,
            shard_path,
            &format!("text embedding of {field}"),
            |s| {
                s.caption(&field)
                    .and_then(|c| c.embedding.as_ref())
                    .map(|(c, p)| (c.shallow_clone(), p.shallow_clone()))
            },
        )? {
            Some(pairs) => {
                let kind = pairs[0].0.kind();
                let (c, p): (Vec<Tensor>, Vec<Tensor>) = pairs.into_iter().unzip();
                Some((stack(&c, kind, pin)?, stack(&p, kind, pin)?))
            }
            None => None,
        };
        captions.push(CaptionColumn {
            field,
            texts,
            embedding,
        });
    }
    let (ids, keys) = samples.into_iter().map(|(id, s)| (id, s.key)).unzip();
    Ok(LatentBatch {
        keys,
        ids,
        mean,
        std,
        flip,
        labels,
        captions,
        skipped: Vec::new(),
    })
}
