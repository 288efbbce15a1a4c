//! One unit to one shard: read and preprocess batches on a producer thread (rayon inside) while
//! this thread encodes the previous batch and appends it to the shard.

use super::encoders::Encoders;
use super::plan::Unit;
use super::record::ShardRecord;
use crate::bad_samples::{BadSample, BadSampleReport};
use crate::error::Result;
use crate::images::{preprocess_batch, stack_images, PreparedSample};
use crate::shards::{LatentDtype, LatentSample, LatentShardWriter, SampleCaption, PRIMARY_CAPTION};
use crate::sources::{CaptionPolicy, Sample};
use crate::PreprocessConfig;
use std::path::Path;
use std::sync::mpsc::sync_channel;
use tch::{Kind, Tensor};

/// What the unit writer needs besides the unit.
pub struct UnitContext<'a> {
    pub dir: &'a Path,
    pub preprocess: PreprocessConfig,
    pub captions: CaptionPolicy,
    pub latent_dtype: LatentDtype,
    pub encoders: &'a Encoders,
    /// Called with the number of source entries consumed (good or bad).
    pub on_samples: &'a (dyn Fn(usize) + Sync),
    /// Called after each sample is appended (fault injection for the kill tests).
    pub after_append: &'a (dyn Fn() + Sync),
}

/// A preprocessed batch and the entries skipped while making it (the report has seen every
/// entry of the chunk, good or bad).
type Prepared = (Vec<PreparedSample>, BadSampleReport);

/// Writes the shard of `unit` and returns its record (not yet saved).
pub fn write_unit(unit: &Unit, ctx: &UnitContext) -> Result<ShardRecord> {
    let batch = ctx.encoders.batch_size;
    let needs_caption = ctx.encoders.text.is_some();
    let mut report = BadSampleReport::new();
    let mut writer = LatentShardWriter::create(&ctx.dir.join(&unit.file))?;
    std::thread::scope(|scope| -> Result<()> {
        let (tx, rx) = sync_channel::<Prepared>(2);
        let (preprocess, captions) = (&ctx.preprocess, ctx.captions);
        scope.spawn(move || {
            let mut items = unit.iter(captions);
            loop {
                let chunk: Vec<_> = items.by_ref().take(batch).collect();
                if chunk.is_empty() {
                    break;
                }
                let mut r = BadSampleReport::new();
                let mut samples: Vec<Sample> = Vec::with_capacity(chunk.len());
                for item in chunk {
                    match item {
                        Ok(s) if needs_caption && s.caption.is_none() => {
                            r.record_bad(BadSample::new(s.key, "no caption for the text encoder"))
                        }
                        Ok(s) => samples.push(s),
                        Err(bad) => r.record_bad(bad),
                    }
                }
                let prepared = preprocess_batch(samples, preprocess, &mut r);
                if tx.send((prepared, r)).is_err() {
                    break; // the encoder side failed; it reports the error
                }
            }
        });
        for (prepared, r) in rx {
            let consumed = r.seen();
            report.merge(r);
            encode_and_append(prepared, ctx, &mut writer)?;
            (ctx.on_samples)(consumed);
        }
        Ok(())
    })?;
    let samples = writer.samples() as u64;
    let bytes = if samples == 0 {
        drop(writer); // removes the empty temporary file; no shard for this unit
        0
    } else {
        writer.finish()?
    };
    Ok(ShardRecord::new(
        &unit.file,
        samples,
        bytes,
        report.into_bad(),
    ))
}

fn encode_and_append(
    batch: Vec<PreparedSample>,
    ctx: &UnitContext,
    writer: &mut LatentShardWriter,
) -> Result<()> {
    let Some((pixels, flipped)) = stack_images(&batch) else {
        return Ok(());
    };
    let enc = ctx.encoders;
    let n = batch.len() as i64;
    let images = match &flipped {
        Some(f) => Tensor::f_cat(&[&pixels, f], 0)?,
        None => pixels,
    };
    let posterior = enc
        .autoencoder
        .encode_raw_chunked(&images, enc.batch_size as i64)?;
    let kind = match ctx.latent_dtype {
        LatentDtype::Float16 => Kind::Half,
        LatentDtype::Float32 => Kind::Float,
    };
    // Converted before the copy to the host: half the bytes to move in fp16.
    let store = |t: &Tensor| t.f_to_kind(kind)?.f_to_device(tch::Device::Cpu);
    let (mean, std) = (store(&posterior.mean)?, store(&posterior.std)?);
    let text = match &enc.text {
        Some(t) => {
            let captions: Vec<&str> = batch
                .iter()
                .map(|s| s.caption.as_deref().unwrap_or_default())
                .collect();
            let c = t
                .encoder
                .encode_batched(&captions, t.batch_size)?
                .to_kind(Kind::Half)?;
            Some((
                c.context.f_to_device(tch::Device::Cpu)?,
                c.pooled.f_to_device(tch::Device::Cpu)?,
            ))
        }
        None => None,
    };
    for (i, s) in batch.into_iter().enumerate() {
        let i = i as i64;
        let flip = match flipped {
            Some(_) => Some((mean.f_get(n + i)?, std.f_get(n + i)?)),
            None => None,
        };
        writer.append(&LatentSample {
            key: s.key,
            mean: mean.f_get(i)?,
            std: std.f_get(i)?,
            flip,
            label: s.label,
            captions: match (s.caption, &text) {
                (None, None) => Vec::new(),
                (caption, text) => vec![SampleCaption {
                    field: PRIMARY_CAPTION.to_owned(),
                    text: caption,
                    embedding: match text {
                        Some((c, p)) => Some((c.f_get(i)?, p.f_get(i)?)),
                        None => None,
                    },
                }],
            },
        })?;
        (ctx.after_append)();
    }
    Ok(())
}
