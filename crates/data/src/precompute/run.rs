//! `flowscale precompute`: list the source, skip finished units, write the others, and once every
//! unit of the plan is done (by this process or others), write the manifest and the list of
//! skipped samples.

use super::config::{parse_device, PrecomputeConfig, SourceConfig};
use super::encoders::Encoders;
use super::plan::{Plan, ShardShare};
use super::record::{bucket_file, ShardRecord};
use super::unit_writer::{write_unit, UnitContext};
use crate::bad_samples::BadSampleReport;
use crate::error::{DataError, Result};
use crate::shards::{BucketEntry, LatentSums, ShardEntry, ShardManifest, ShardSplit, Splits};
use crate::sources::CaptionPolicy;
use flowscale_core::atomic::{tmp_prefix, write_atomic};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The record of the config a shard directory was made with.
pub const FINGERPRINT_FILE: &str = "precompute.json";
/// Skipped samples of the whole shard set, tab-separated.
pub const BAD_SAMPLES_FILE: &str = "bad-samples.tsv";
/// Test hook: abort the process (no clean-up, as a kill) after this many appended samples.
pub const ABORT_AFTER_ENV: &str = "FLOWSCALE_PRECOMPUTE_ABORT_AFTER_SAMPLES";

/// Samples seen before the bad fraction is checked after each shard.
const EARLY_CHECK_MIN_SAMPLES: usize = 1000;

/// Progress callbacks (the CLI draws bars from them).
pub trait Progress: Sync {
    /// `units` to do by this process, of which `done` are already finished; `listed` source
    /// entries in the units still to do, when the source is listed.
    fn begin(&self, _units: usize, _done: usize, _listed: Option<u64>) {}
    /// Source entries consumed.
    fn samples(&self, _n: usize) {}
    fn unit_done(&self, _record: &ShardRecord) {}
}

/// No output.
pub struct Silent;
impl Progress for Silent {}

/// What a precompute did.
#[derive(Debug, Clone, PartialEq)]
pub struct PrecomputeReport {
    pub dir: PathBuf,
    /// Units of the whole plan, of this process's share, found finished, and written now.
    pub units_total: usize,
    pub units_assigned: usize,
    pub units_reused: usize,
    pub units_written: usize,
    /// Source entries read now, samples written now, skipped now.
    pub entries_read: u64,
    pub samples_written: u64,
    pub samples_skipped: u64,
    pub bytes_written: u64,
    pub seconds: f64,
    /// Units of the plan not finished yet (other processes' shares).
    pub units_pending: usize,
    /// Written once every unit is done.
    pub manifest: Option<ShardManifest>,
    /// All skipped samples of the finished units.
    pub skipped_total: u64,
}

impl PrecomputeReport {
    pub fn images_per_second(&self) -> f64 {
        self.entries_read as f64 / self.seconds.max(1e-9)
    }
}

impl std::fmt::Display for PrecomputeReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "shards: {} of the plan's {} are this process's: {} written, {} already done",
            self.units_assigned, self.units_total, self.units_written, self.units_reused
        )?;
        writeln!(
            f,
            "samples: {} read, {} written, {} skipped; {:.1} MB in {:.1} s ({:.1} images/s)",
            self.entries_read,
            self.samples_written,
            self.samples_skipped,
            self.bytes_written as f64 / 1e6,
            self.seconds,
            self.images_per_second()
        )?;
        if let Some(m) = self.manifest.as_ref().filter(|m| !m.buckets.is_empty()) {
            // Train / val samples of each aspect bucket.
            let per = |split: ShardSplit, b: u32| -> u64 {
                m.bucket_shards(split, b).iter().map(|s| s.samples).sum()
            };
            let buckets: Vec<String> = m
                .buckets
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    let i = i as u32;
                    format!(
                        "{}x{} {}/{}",
                        b.width,
                        b.height,
                        per(ShardSplit::Train, i),
                        per(ShardSplit::Val, i)
                    )
                })
                .collect();
            writeln!(f, "buckets (train/val samples): {}", buckets.join(", "))?;
        }
        match &self.manifest {
            Some(m) => write!(
                f,
                "complete: {} train samples in {} shards, {} val samples in {} shards, {} \
                 skipped (listed in {}); manifest {}",
                m.samples(ShardSplit::Train),
                m.splits.train.len(),
                m.samples(ShardSplit::Val),
                m.splits.val.len(),
                self.skipped_total,
                self.dir.join(BAD_SAMPLES_FILE).display(),
                ShardManifest::path(&self.dir).display()
            ),
            None => write!(
                f,
                "{} shards of other processes' shares are not finished yet; the last process \
                 to finish writes the manifest",
                self.units_pending
            ),
        }
    }
}

/// Runs this process's share of the precompute of `cfg`.
pub fn precompute(
    cfg: &PrecomputeConfig,
    share: ShardShare,
    progress: &dyn Progress,
) -> Result<PrecomputeReport> {
    if share.count == 0 || share.index >= share.count {
        return Err(DataError::Invalid(format!(
            "--shard-index {} must be below --num-shards {} (and that at least 1)",
            share.index, share.count
        )));
    }
    let start = Instant::now();
    let dir = cfg.output.dir.clone();
    let device = parse_device(&cfg.output.device).map_err(DataError::Invalid)?;
    let plan = Plan::new(cfg)?;
    // Before the encoders load (slow): a second process on the same share is refused at once,
    // naming the first; other shares of the output run beside it.
    std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
    let _lock = flowscale_core::DirLock::acquire_file(
        &dir,
        &format!(
            ".flowscale-precompute-share-{}-of-{}.lock",
            share.index, share.count
        ),
        &format!(
            "flowscale precompute, share {} of {}",
            share.index, share.count
        ),
    )
    .map_err(|e| DataError::Invalid(e.to_string()))?;
    let encoders = Encoders::load(cfg, device)?;
    let factor = encoders.info.downsample_factor;
    let resolution = i64::from(cfg.preprocess.resolution);
    if resolution % factor != 0 {
        return Err(DataError::Invalid(format!(
            "preprocess.resolution {resolution} is not a multiple of the autoencoder's \
             downsampling factor {factor}"
        )));
    }
    let buckets = cfg.preprocess_config().buckets;
    for b in buckets.iter().flat_map(|b| b.sizes()) {
        if b.width as i64 % factor != 0 || b.height as i64 % factor != 0 {
            return Err(DataError::Invalid(format!(
                "preprocess.buckets: {}x{} is not a multiple of the autoencoder's downsampling \
                 factor {factor}",
                b.width, b.height
            )));
        }
    }
    check_fingerprint(&dir, cfg, &encoders)?;

    let assigned: Vec<_> = plan.assigned(share).collect();
    let mut records: Vec<Option<ShardRecord>> = assigned
        .iter()
        .map(|u| ShardRecord::load_complete(&dir, &u.file))
        .collect::<Result<_>>()?;
    let reused = records.iter().flatten().count();
    // A unit's possible shard files: its own, and with buckets one per bucket.
    let bucket_count = buckets.as_ref().map_or(0, |b| b.sizes().len());
    let unfinished: Vec<String> = assigned
        .iter()
        .zip(&records)
        .filter(|(_, r)| r.is_none())
        .flat_map(|(u, _)| {
            std::iter::once(u.file.clone())
                .chain((0..bucket_count).map(|b| bucket_file(&u.file, b)))
        })
        .collect();
    remove_partial_shards(&dir, &unfinished)?;
    let listed: Option<u64> = assigned
        .iter()
        .zip(&records)
        .filter(|(_, r)| r.is_none())
        .map(|(u, _)| u.listed_len().map(|n| n as u64))
        .sum();
    progress.begin(assigned.len(), reused, listed);

    let abort_after: Option<u64> = std::env::var(ABORT_AFTER_ENV)
        .ok()
        .and_then(|v| v.parse().ok());
    let appended = AtomicU64::new(0);
    let after_append = || {
        let n = appended.fetch_add(1, Ordering::Relaxed) + 1;
        if abort_after == Some(n) {
            eprintln!("{ABORT_AFTER_ENV}: aborting after {n} samples");
            std::process::abort();
        }
    };
    let on_samples = |n: usize| progress.samples(n);
    let captions = match cfg.source {
        SourceConfig::Webdataset {
            captions_optional: true,
            ..
        } => CaptionPolicy::Optional,
        _ => CaptionPolicy::Required,
    };
    let ctx = UnitContext {
        dir: &dir,
        preprocess: cfg.preprocess_config(),
        captions,
        caption_fields: cfg.source.caption_fields(),
        latent_dtype: cfg.output.latent_dtype,
        encoders: &encoders,
        on_samples: &on_samples,
        after_append: &after_append,
    };
    let (mut written, mut samples, mut skipped, mut bytes) = (0, 0, 0, 0);
    let mut so_far = bad_report(records.iter().flatten());
    for (i, unit) in assigned.iter().enumerate() {
        if records[i].is_some() {
            continue;
        }
        let record = write_unit(unit, &ctx)?;
        record.save(&dir)?;
        progress.unit_done(&record);
        written += 1;
        samples += record.samples;
        skipped += record.skipped.len() as u64;
        bytes += record.bytes;
        // Stop a broken dataset early, once the fraction means something; the final check
        // below is over everything.
        so_far.merge(bad_report(std::iter::once(&record)));
        records[i] = Some(record);
        if so_far.seen() >= EARLY_CHECK_MIN_SAMPLES {
            stop_if_too_bad(&so_far, cfg.preprocess.max_bad_fraction, &dir)?;
        }
    }

    // This process's records are in hand; the other shares' are on disk.
    let mut own = records.into_iter();
    let all: Vec<Option<ShardRecord>> = plan
        .units
        .iter()
        .enumerate()
        .map(|(i, u)| {
            if share.owns(i) {
                Ok(own.next().expect("one record slot per assigned unit"))
            } else {
                ShardRecord::load_complete(&dir, &u.file)
            }
        })
        .collect::<Result<_>>()?;
    let pending = all.iter().filter(|r| r.is_none()).count();
    let (manifest, skipped_total) = if pending == 0 {
        let records: Vec<(&ShardRecord, ShardSplit)> = all
            .iter()
            .flatten()
            .zip(plan.units.iter().map(|u| u.split))
            .collect();
        let report = bad_report(records.iter().map(|(r, _)| *r));
        stop_if_too_bad(&report, cfg.preprocess.max_bad_fraction, &dir)?;
        report.write_tsv(&dir.join(BAD_SAMPLES_FILE))?;
        let manifest = build_manifest(cfg, &plan, &encoders, &records)?;
        manifest.save(&dir)?;
        (Some(manifest), report.bad().len() as u64)
    } else {
        (None, 0)
    };
    Ok(PrecomputeReport {
        dir,
        units_total: plan.units.len(),
        units_assigned: assigned.len(),
        units_reused: reused,
        units_written: written,
        // Every entry read is either written or skipped.
        entries_read: samples + skipped,
        samples_written: samples,
        samples_skipped: skipped,
        bytes_written: bytes,
        seconds: start.elapsed().as_secs_f64(),
        units_pending: pending,
        manifest,
        skipped_total,
    })
}

/// Deletes what killed writers left of `files` (`.<file>.tmp-<pid>-<n>`). Only this process writes
/// its units, so no live writer's file is touched.
fn remove_partial_shards(dir: &Path, files: &[String]) -> Result<()> {
    let prefixes: Vec<String> = files.iter().map(|f| tmp_prefix(f)).collect();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let path = entry.map_err(|e| DataError::io(dir, e))?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if prefixes.iter().any(|p| name.starts_with(p.as_str())) {
            std::fs::remove_file(&path).map_err(|e| DataError::io(&path, e))?;
        }
    }
    Ok(())
}

/// An error when more than `max` of the samples were bad, after listing every bad sample so far
/// in `bad-samples.tsv` (the error names the first few; the list is where to look for the rest).
fn stop_if_too_bad(report: &BadSampleReport, max: f64, dir: &Path) -> Result<()> {
    let Err(e) = report.check(max) else {
        return Ok(());
    };
    let path = dir.join(BAD_SAMPLES_FILE);
    report.write_tsv(&path)?;
    Err(DataError::Invalid(format!(
        "{e}; every bad sample so far is listed in {}",
        path.display()
    )))
}

/// The skipped samples of `records` against everything they read.
fn bad_report<'a>(records: impl Iterator<Item = &'a ShardRecord>) -> BadSampleReport {
    let mut report = BadSampleReport::new();
    for r in records {
        report.record_good(r.samples as usize);
        for b in &r.skipped {
            report.record_bad(b.clone());
        }
    }
    report
}

fn build_manifest(
    cfg: &PrecomputeConfig,
    plan: &Plan,
    encoders: &Encoders,
    records: &[(&ShardRecord, ShardSplit)],
) -> Result<ShardManifest> {
    let buckets = cfg.preprocess_config().buckets;
    // Unit order; with buckets, each unit's shards in bucket order.
    let entries = |split: ShardSplit| -> Vec<ShardEntry> {
        records
            .iter()
            .filter(|(r, s)| *s == split && r.samples > 0)
            .flat_map(|(r, _)| match &buckets {
                None => vec![ShardEntry {
                    file: r.file.clone(),
                    samples: r.samples,
                    bytes: r.bytes,
                    bucket: None,
                }],
                Some(_) => r
                    .buckets
                    .iter()
                    .map(|b| ShardEntry {
                        file: b.file.clone(),
                        samples: b.samples,
                        bytes: b.bytes,
                        bucket: Some(b.bucket),
                    })
                    .collect(),
            })
            .collect()
    };
    let info = encoders.info.clone();
    let side = i64::from(cfg.preprocess.resolution) / info.downsample_factor;
    // The train units' sums, merged in unit order; none when a record predates them.
    let mut sums = Some(LatentSums::default());
    for (r, _) in records
        .iter()
        .filter(|(r, s)| *s == ShardSplit::Train && r.samples > 0)
    {
        sums = match (sums, &r.latent_sums) {
            (Some(mut all), Some(unit)) => {
                // A record is a file like any other: a damaged one is named, not merged.
                let record = ShardRecord::path(&cfg.output.dir, &r.file);
                let finite = unit.sum.iter().chain(&unit.sum_sq).all(|v| v.is_finite());
                if !finite || unit.sum.len() as i64 != encoders.info.latent_channels {
                    return Err(DataError::corrupt(
                        &record,
                        format!(
                            "latent_sums: {} channels (the autoencoder has {}), all finite: \
                             {finite}; delete the record to redo its shard",
                            unit.sum.len(),
                            encoders.info.latent_channels
                        ),
                    ));
                }
                all.merge(unit)
                    .map_err(|e| DataError::corrupt(&record, e.to_string()))?;
                Some(all)
            }
            _ => None,
        };
    }
    let manifest = ShardManifest {
        format_version: ShardManifest::format_for(buckets.is_some()),
        latent_shape: [info.latent_channels, side, side],
        autoencoder: info,
        resolution: cfg.preprocess.resolution,
        latent_dtype: cfg.output.latent_dtype,
        has_flip: cfg.preprocess.flip,
        latent_stats: sums.and_then(|s| s.stats()),
        has_labels: !plan.class_names.is_empty(),
        class_names: plan.class_names.clone(),
        has_captions: plan.has_captions,
        text: encoders.text_info(),
        caption_fields: if plan.has_captions || encoders.text.is_some() {
            cfg.source.caption_fields().to_vec()
        } else {
            Vec::new()
        },
        buckets: buckets
            .iter()
            .flat_map(|b| b.sizes())
            .map(|s| BucketEntry {
                width: s.width as u32,
                height: s.height as u32,
            })
            .collect(),
        splits: Splits {
            train: entries(ShardSplit::Train),
            val: entries(ShardSplit::Val),
        },
    };
    manifest.validate().map_err(|r| {
        DataError::Invalid(format!(
            "{}: {r} (every sample was skipped?)",
            cfg.output.dir.display()
        ))
    })?;
    Ok(manifest)
}

/// What decides the shards: the config's content (`source.caption_fields` included when not the
/// default), the autoencoder (with its weights' hash) and the text encoder's config.
fn fingerprint(cfg: &PrecomputeConfig, encoders: &Encoders) -> Value {
    json!({
        "config": cfg.content_fingerprint(),
        "autoencoder": serde_json::to_value(&encoders.info).expect("serializable"),
        "text_encoder_config": encoders.text.as_ref().map(|t| t.config_text.clone()),
    })
}

/// Writes the fingerprint into a new directory, or refuses a directory made differently.
fn check_fingerprint(dir: &Path, cfg: &PrecomputeConfig, encoders: &Encoders) -> Result<()> {
    let path = dir.join(FINGERPRINT_FILE);
    let want = fingerprint(cfg, encoders);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let have: Value = serde_json::from_str(&text)
                .map_err(|e| DataError::corrupt(&path, format!("not JSON: {e}")))?;
            let diff = differences(&have, &want, "");
            if diff.is_empty() {
                return Ok(());
            }
            Err(DataError::Invalid(format!(
                "{}: the shards in {} were made with a different precompute: {}; write to a new \
                 output.dir, or delete this one to recompute it",
                path.display(),
                dir.display(),
                diff.join("; ")
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if ShardManifest::path(dir).exists() {
                return Err(DataError::Invalid(format!(
                    "{}: holds a shard manifest without {FINGERPRINT_FILE}; flowscale precompute \
                     only adds to directories it made",
                    dir.display()
                )));
            }
            let text = serde_json::to_string_pretty(&want).expect("serializable");
            Ok(write_atomic(&path, text.as_bytes())?)
        }
        Err(e) => Err(DataError::io(&path, e)),
    }
}

/// `key: old -> new` for every leaf that differs.
fn differences(a: &Value, b: &Value, at: &str) -> Vec<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .flat_map(|k| {
                    let at = if at.is_empty() {
                        k.clone()
                    } else {
                        format!("{at}.{k}")
                    };
                    differences(
                        x.get(k).unwrap_or(&Value::Null),
                        y.get(k).unwrap_or(&Value::Null),
                        &at,
                    )
                })
                .collect()
        }
        _ if a == b => Vec::new(),
        _ => vec![format!("{at} was {a}, now {b}")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_each_changed_leaf() {
        let a = json!({"config": {"preprocess": {"resolution": 64, "flip": false}}, "x": 1});
        let b = json!({"config": {"preprocess": {"resolution": 32, "flip": false}}, "y": 2});
        assert_eq!(
            differences(&a, &b, ""),
            [
                "config.preprocess.resolution was 64, now 32",
                "x was 1, now null",
                "y was null, now 2"
            ]
        );
        assert!(differences(&a, &a, "").is_empty());
    }
}
