//! One unit to one shard: read and preprocess batches on a producer thread (rayon inside) while
//! this thread encodes the previous batch and appends it to the shard. Every caption field read
//! (`txt`, then further ones such as a synthetic `syn`) is stored with its text and, with a text
//! encoder, its fp16 embedding. With aspect buckets each bucket the unit's images fall into gets
//! its own shard, samples in source order within it.

use super::encoders::Encoders;
use super::plan::Unit;
use super::record::{bucket_file, BucketShard, ShardRecord};
use crate::bad_samples::{BadSample, BadSampleReport};
use crate::error::{DataError, Result};
use crate::images::{preprocess_batch, stack_images, PreparedSample};
use crate::shards::{
    LatentDtype, LatentSample, LatentShardWriter, LatentSums, SampleCaption, ShardSplit,
};
use crate::sources::{CaptionPolicy, Sample};
use crate::PreprocessConfig;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc::sync_channel;
use tch::{Kind, Tensor};

/// What the unit writer needs besides the unit.
pub struct UnitContext<'a> {
    pub dir: &'a Path,
    pub preprocess: PreprocessConfig,
    pub captions: CaptionPolicy,
    /// The caption fields read and stored, `txt` first.
    pub caption_fields: &'a [String],
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
    let bucketed = ctx.preprocess.buckets.is_some();
    // By bucket (0 without buckets), created at the bucket's first sample.
    let mut writers: BTreeMap<usize, LatentShardWriter> = BTreeMap::new();
    // Statistics describe the train split only.
    let mut sums = (unit.split == ShardSplit::Train).then(LatentSums::default);
    std::thread::scope(|scope| -> Result<()> {
        let (tx, rx) = sync_channel::<Prepared>(2);
        let (preprocess, captions) = (&ctx.preprocess, ctx.captions);
        let further = super::caption_fields::further(ctx.caption_fields);
        scope.spawn(move || {
            let mut items = unit.iter(captions, further);
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
            for (bucket, group) in by_bucket(prepared) {
                let writer = match writers.entry(bucket) {
                    std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::btree_map::Entry::Vacant(e) => {
                        let file = if bucketed {
                            bucket_file(&unit.file, bucket)
                        } else {
                            unit.file.clone()
                        };
                        e.insert(LatentShardWriter::create(&ctx.dir.join(file))?)
                    }
                };
                encode_and_append(group, ctx, writer, sums.as_mut())?;
            }
            (ctx.on_samples)(consumed);
        }
        Ok(())
    })?;
    // A writer exists only once a sample was appended, so no empty shard is written.
    let mut shards = Vec::new();
    for (bucket, writer) in writers {
        let samples = writer.samples() as u64;
        let file = if bucketed {
            bucket_file(&unit.file, bucket)
        } else {
            unit.file.clone()
        };
        shards.push(BucketShard {
            bucket: bucket as u32,
            file,
            samples,
            bytes: writer.finish()?,
        });
    }
    let samples = shards.iter().map(|s| s.samples).sum();
    let bytes = shards.iter().map(|s| s.bytes).sum();
    let mut record = ShardRecord::new(&unit.file, samples, bytes, report.into_bad(), sums);
    if bucketed {
        record.buckets = shards;
    }
    Ok(record)
}

/// The batch split by bucket (one group, bucket 0, without buckets), source order kept in
/// each: the autoencoder encodes one image size at a time.
fn by_bucket(batch: Vec<PreparedSample>) -> BTreeMap<usize, Vec<PreparedSample>> {
    let mut groups: BTreeMap<usize, Vec<PreparedSample>> = BTreeMap::new();
    for s in batch {
        groups
            .entry(s.image.bucket.unwrap_or(0))
            .or_default()
            .push(s);
    }
    groups
}

fn encode_and_append(
    batch: Vec<PreparedSample>,
    ctx: &UnitContext,
    writer: &mut LatentShardWriter,
    sums: Option<&mut LatentSums>,
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
    if let Some(sums) = sums {
        // The stored values of the unflipped images, as a run reads them.
        sums.add(&mean.f_narrow(0, 0, n)?)?;
    }
    let mut columns = ctx
        .caption_fields
        .iter()
        .map(|field| caption_column(&batch, field, enc))
        .collect::<Result<Vec<_>>>()?;
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
            captions: columns
                .iter_mut()
                .map(|column| column.take(i))
                .filter_map(Result::transpose)
                .collect::<Result<_>>()?,
        })?;
        (ctx.after_append)();
    }
    Ok(())
}

/// One caption field of a batch: each sample's text and, with a text encoder, the fp16
/// embeddings of the batch on the host.
struct EncodedField<'a> {
    field: &'a str,
    texts: Vec<Option<String>>,
    embedding: Option<(Tensor, Tensor)>,
}

impl EncodedField<'_> {
    /// Sample `i`'s caption; `None` when it has neither text nor embedding (an unconditioned
    /// sample of a source whose captions are optional).
    fn take(&mut self, i: i64) -> Result<Option<SampleCaption>> {
        let text = self.texts[i as usize].take();
        let embedding = match &self.embedding {
            Some((c, p)) => Some((c.f_get(i)?, p.f_get(i)?)),
            None => None,
        };
        Ok(
            (text.is_some() || embedding.is_some()).then(|| SampleCaption {
                field: self.field.to_owned(),
                text,
                embedding,
            }),
        )
    }
}

/// The `field` captions of `batch`, encoded when there is a text encoder.
fn caption_column<'a>(
    batch: &[PreparedSample],
    field: &'a str,
    enc: &Encoders,
) -> Result<EncodedField<'a>> {
    let texts: Vec<Option<String>> = batch
        .iter()
        .map(|s| s.caption_of(field).map(str::to_owned))
        .collect();
    let embedding = match &enc.text {
        Some(t) => {
            // The producer skips samples without `txt` and the sources samples without a
            // further field, so a gap here is a bug; it is reported, not encoded as "".
            let prompts: Vec<&str> = batch
                .iter()
                .zip(&texts)
                .map(|(s, text)| {
                    text.as_deref().ok_or_else(|| {
                        DataError::Invalid(format!(
                            "sample {}: no {field} caption for the text encoder",
                            s.key
                        ))
                    })
                })
                .collect::<Result<_>>()?;
            let c = t
                .encoder
                .encode_batched(&prompts, t.batch_size)?
                .to_kind(Kind::Half)?;
            Some((
                c.context.f_to_device(tch::Device::Cpu)?,
                c.pooled.f_to_device(tch::Device::Cpu)?,
            ))
        }
        None => None,
    };
    Ok(EncodedField {
        field,
        texts,
        embedding,
    })
}
