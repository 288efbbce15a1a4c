//! `manifest.json` of a shard directory: what the latents are (autoencoder, its weights' hash,
//! resolution, shape, dtype), what each sample carries, and the shards of each split with their
//! sample counts and sizes. `flowscale precompute` writes it; the loader and the trainer read it,
//! and a cache made with another autoencoder, resolution or dtype is refused
//! ([`ShardManifest::check_matches`]) rather than silently trained on.

use crate::error::{DataError, Result};
use crate::shards::latent_shard::{is_caption_field, PRIMARY_CAPTION};
use crate::shards::LatentStats;
use flowscale_encoders::text::TextSourceSpan;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// File name of the manifest inside a shard directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The newest manifest format this version reads and writes. Version 2 added `latent_stats`,
/// version 3 aspect buckets (`buckets`, and each shard's `bucket`); older manifests are read as
/// they are. A manifest is written at the oldest format that holds it
/// ([`ShardManifest::format_for`]): a shard set without buckets is still format 2.
pub const MANIFEST_VERSION: u32 = 3;
/// The format of a manifest without buckets.
pub const MANIFEST_VERSION_UNBUCKETED: u32 = 2;
/// The oldest format this version reads.
pub const MANIFEST_VERSION_MIN: u32 = 1;

/// The autoencoder that produced the latents. `kind = "identity"` means pixel space: the
/// "latents" are the images in [-1, 1], downsample factor 1, scale 1, shift 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoencoderInfo {
    /// The autoencoder kind as configs name it: "kl", "taef2" or "identity".
    pub kind: String,
    /// Which one (a model id or folder name), for people reading the manifest.
    pub name: String,
    /// SHA-256 of the weights file(s), hex; absent for weight-free kinds (identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_sha256: Option<String>,
    pub latent_channels: i64,
    pub downsample_factor: i64,
    /// Latents given to the model are `(z - shift_factor) * scaling_factor` (SD3: 1.5305, 0.0609).
    pub scaling_factor: f64,
    pub shift_factor: f64,
}

/// Element type of the stored `mean.npy` / `std.npy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LatentDtype {
    Float16,
    Float32,
}

/// Precomputed text-encoder outputs stored with each sample (`context.npy`, `pooled.npy`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextEmbeddingInfo {
    /// The encoder's identity (a model id or folder), so a different encoder is detectable.
    pub encoder: String,
    /// `[tokens, width]`.
    pub context_shape: [i64; 2],
    /// `[width]`.
    pub pooled_shape: [i64; 1],
    /// Where each independently droppable source sits in context and pooled vector (SD3:
    /// clip_l, clip_g, t5). Empty in manifests written before sources were recorded: one source
    /// named `text` covering everything.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<TextSourceSpan>,
}

impl TextEmbeddingInfo {
    /// The sources, with the single whole-tensor `text` source when none are recorded.
    pub fn spans(&self) -> Vec<TextSourceSpan> {
        if self.sources.is_empty() {
            let [tokens, width] = self.context_shape;
            vec![TextSourceSpan::whole(
                "text",
                tokens,
                width,
                self.pooled_shape[0],
            )]
        } else {
            self.sources.clone()
        }
    }
}

/// One shard file of a split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardEntry {
    /// File name relative to the shard directory.
    pub file: String,
    pub samples: u64,
    pub bytes: u64,
    /// The aspect bucket of every sample of the shard: an index into
    /// [`ShardManifest::buckets`] (format 3; absent without buckets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<u32>,
}

/// One aspect bucket of a bucketed shard set: the image size its samples were cropped to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketEntry {
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Splits {
    pub train: Vec<ShardEntry>,
    /// Held-out shards for validation; may be empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub val: Vec<ShardEntry>,
}

/// Which split of a shard set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardSplit {
    Train,
    Val,
}

impl ShardSplit {
    pub fn name(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Val => "val",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardManifest {
    pub format_version: u32,
    pub autoencoder: AutoencoderInfo,
    /// Square image resolution the latents were encoded at (with buckets: the base side S, the
    /// buckets holding about S^2 pixels each).
    pub resolution: u32,
    /// `[C, H, W]` of one latent (with buckets: of the base square; see
    /// [`ShardManifest::latent_shape_of`]).
    pub latent_shape: [i64; 3],
    pub latent_dtype: LatentDtype,
    pub has_flip: bool,
    pub has_labels: bool,
    /// Class names by label index; required when `has_labels`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub class_names: Vec<String>,
    pub has_captions: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextEmbeddingInfo>,
    /// The caption fields every sample carries, `txt` first (each with its text when
    /// `has_captions`, and its embedding when `text` is set). Empty in manifests written before
    /// further fields existed: `txt` alone when there are captions or embeddings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caption_fields: Vec<String>,
    /// Mean and std of the train split's latents (format 2; `None` in format 1 manifests and
    /// when a unit's record predates them): what `data.latent_normalization = "data"` uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latent_stats: Option<LatentStats>,
    /// The aspect buckets, indexed by [`ShardEntry::bucket`] (format 3); empty for a square
    /// shard set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buckets: Vec<BucketEntry>,
    pub splits: Splits,
}

/// What a run expects of a shard cache; compared with [`ShardManifest::check_matches`].
#[derive(Debug, Clone, PartialEq)]
pub struct CacheExpectation {
    pub autoencoder_kind: String,
    pub autoencoder_name: String,
    /// `None`: not checked (e.g. identity, or a caller that does not know the hash).
    pub weights_sha256: Option<String>,
    pub resolution: u32,
    pub latent_dtype: LatentDtype,
}

impl ShardManifest {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(MANIFEST_FILE)
    }

    /// Reads and validates `dir/manifest.json`; errors name the file and the field.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = Self::path(dir);
        let text = std::fs::read_to_string(&path).map_err(|e| DataError::io(&path, e))?;
        Self::parse(&text, &path)
    }

    /// [`ShardManifest::load`] for text already in memory (the fuzz target's entry); `path`
    /// only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let manifest: Self = serde_path_to_error::deserialize(de)
            .map_err(|e| DataError::corrupt(path, format!("field {}: {}", e.path(), e.inner())))?;
        manifest
            .validate()
            .map_err(|r| DataError::corrupt(path, r))?;
        Ok(manifest)
    }

    /// Validates, then writes `dir/manifest.json` through a temporary file and a rename, so a
    /// reader never sees a partial manifest.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = Self::path(dir);
        self.validate()
            .map_err(|r| DataError::Invalid(format!("{}: {r}", path.display())))?;
        // Plain structs with string keys: serializing cannot fail.
        let text = serde_json::to_string_pretty(self).expect("serializable");
        Ok(flowscale_core::write_atomic(
            &path,
            format!("{text}\n").as_bytes(),
        )?)
    }

    /// The caption fields of every sample (see [`ShardManifest::caption_fields`]).
    pub fn caption_fields(&self) -> Vec<String> {
        if !self.caption_fields.is_empty() {
            self.caption_fields.clone()
        } else if self.has_captions || self.text.is_some() {
            vec![PRIMARY_CAPTION.to_owned()]
        } else {
            Vec::new()
        }
    }

    /// The shards of a split.
    pub fn shards(&self, split: ShardSplit) -> &[ShardEntry] {
        match split {
            ShardSplit::Train => &self.splits.train,
            ShardSplit::Val => &self.splits.val,
        }
    }

    /// Total samples of a split.
    pub fn samples(&self, split: ShardSplit) -> u64 {
        self.shards(split).iter().map(|s| s.samples).sum()
    }

    /// The format a manifest with (or without) buckets is written at.
    pub fn format_for(bucketed: bool) -> u32 {
        if bucketed {
            MANIFEST_VERSION
        } else {
            MANIFEST_VERSION_UNBUCKETED
        }
    }

    /// `[C, H, W]` of the latents of `bucket` (the base square's for `None`).
    pub fn latent_shape_of(&self, bucket: Option<u32>) -> [i64; 3] {
        match bucket.and_then(|b| self.buckets.get(b as usize)) {
            Some(b) => {
                let f = self.autoencoder.downsample_factor;
                [
                    self.latent_shape[0],
                    i64::from(b.height) / f,
                    i64::from(b.width) / f,
                ]
            }
            None => self.latent_shape,
        }
    }

    /// The shards of `split` in `bucket`, in manifest order.
    pub fn bucket_shards(&self, split: ShardSplit, bucket: u32) -> Vec<&ShardEntry> {
        self.shards(split)
            .iter()
            .filter(|s| s.bucket == Some(bucket))
            .collect()
    }

    /// Consistency of the fields with each other; the message names the field.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !(MANIFEST_VERSION_MIN..=MANIFEST_VERSION).contains(&self.format_version) {
            return Err(format!(
                "field format_version: {} is not supported (this flowscale reads versions \
                 {MANIFEST_VERSION_MIN} to {MANIFEST_VERSION}); recompute the shards",
                self.format_version
            ));
        }
        if let Some(stats) = &self.latent_stats {
            if self.format_version < 2 {
                return Err("field latent_stats: not part of format_version 1".into());
            }
            stats.validate(self.latent_shape[0])?;
        }
        if !self.buckets.is_empty() && self.format_version < 3 {
            return Err(format!(
                "field buckets: not part of format_version {}",
                self.format_version
            ));
        }
        let ae = &self.autoencoder;
        if ae.kind.is_empty() {
            return Err("field autoencoder.kind: must not be empty".into());
        }
        if ae.latent_channels < 1 || ae.downsample_factor < 1 {
            return Err(format!(
                "field autoencoder: latent_channels ({}) and downsample_factor ({}) must be >= 1",
                ae.latent_channels, ae.downsample_factor
            ));
        }
        if !(ae.scaling_factor.is_finite()
            && ae.scaling_factor > 0.0
            && ae.shift_factor.is_finite())
        {
            return Err(format!(
                "field autoencoder: scaling_factor ({}) must be positive and shift_factor ({}) finite",
                ae.scaling_factor, ae.shift_factor
            ));
        }
        if let Some(h) = &ae.weights_sha256 {
            if h.len() != 64 || !h.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(format!(
                    "field autoencoder.weights_sha256: {h:?} is not 64 hex digits"
                ));
            }
        }
        let [c, h, w] = self.latent_shape;
        if c != ae.latent_channels {
            return Err(format!(
                "field latent_shape: {c} channels, but autoencoder.latent_channels is {}",
                ae.latent_channels
            ));
        }
        let side = i64::from(self.resolution) / ae.downsample_factor;
        if self.resolution == 0 || h != side || w != side {
            return Err(format!(
                "field latent_shape: {h}x{w}, but resolution {} / downsample_factor {} is {side}",
                self.resolution, ae.downsample_factor
            ));
        }
        for (i, b) in self.buckets.iter().enumerate() {
            let f = ae.downsample_factor;
            if b.width == 0
                || b.height == 0
                || i64::from(b.width) % f != 0
                || i64::from(b.height) % f != 0
            {
                return Err(format!(
                    "field buckets[{i}]: {}x{} is not a positive multiple of downsample_factor {f}",
                    b.width, b.height
                ));
            }
            if self.buckets[..i].contains(b) {
                return Err(format!(
                    "field buckets[{i}]: {}x{} is listed twice",
                    b.width, b.height
                ));
            }
        }
        if self.has_labels && self.class_names.is_empty() {
            return Err("field class_names: required when has_labels is true".into());
        }
        if let Some(t) = &self.text {
            if t.context_shape
                .iter()
                .chain(&t.pooled_shape)
                .any(|&d| d < 1)
            {
                return Err(format!(
                    "field text: shapes must be positive, got context {:?}, pooled {:?}",
                    t.context_shape, t.pooled_shape
                ));
            }
            let [tokens, width] = t.context_shape;
            TextSourceSpan::check_all(&t.spans(), tokens, width, t.pooled_shape[0])
                .map_err(|e| format!("field text.sources: {e}"))?;
        }
        for (i, f) in self.caption_fields.iter().enumerate() {
            if !is_caption_field(f) || self.caption_fields[..i].contains(f) {
                return Err(format!(
                    "field caption_fields: {f:?} must be 1-32 of [A-Za-z0-9_] and listed once"
                ));
            }
        }
        if self.splits.train.is_empty() {
            return Err("field splits.train: lists no shards".into());
        }
        let mut seen = std::collections::HashSet::new();
        for split in [ShardSplit::Train, ShardSplit::Val] {
            for s in self.shards(split) {
                let plain = !s.file.is_empty()
                    && !s.file.contains(['/', '\\'])
                    && s.file != "."
                    && s.file != "..";
                if !plain {
                    return Err(format!(
                        "field splits.{}: shard file {:?} must be a plain file name in the \
                         shard directory",
                        split.name(),
                        s.file
                    ));
                }
                if s.samples == 0 {
                    return Err(format!(
                        "field splits.{}: shard {} has no samples",
                        split.name(),
                        s.file
                    ));
                }
                let n = self.buckets.len();
                match s.bucket {
                    None if n > 0 => {
                        return Err(format!(
                            "field splits.{}: shard {} has no bucket (the manifest has {n})",
                            split.name(),
                            s.file
                        ))
                    }
                    Some(b) if b as usize >= n => {
                        return Err(format!(
                            "field splits.{}: shard {} is in bucket {b}, but the manifest has \
                             {n} bucket(s)",
                            split.name(),
                            s.file
                        ))
                    }
                    _ => {}
                }
                if !seen.insert(s.file.as_str()) {
                    return Err(format!(
                        "field splits.{}: shard {} is listed twice",
                        split.name(),
                        s.file
                    ));
                }
            }
        }
        Ok(())
    }

    /// Refuses a cache that was made differently from what the run expects, naming every field
    /// that differs (`manifest` names the file in the message).
    pub fn check_matches(&self, expected: &CacheExpectation, manifest: &Path) -> Result<()> {
        let ae = &self.autoencoder;
        let mut diff = Vec::new();
        if ae.kind != expected.autoencoder_kind {
            diff.push(format!(
                "autoencoder.kind is {:?}, expected {:?}",
                ae.kind, expected.autoencoder_kind
            ));
        }
        if ae.name != expected.autoencoder_name {
            diff.push(format!(
                "autoencoder.name is {:?}, expected {:?}",
                ae.name, expected.autoencoder_name
            ));
        }
        if let Some(want) = &expected.weights_sha256 {
            if !ae
                .weights_sha256
                .as_deref()
                .is_some_and(|h| h.eq_ignore_ascii_case(want))
            {
                diff.push(format!(
                    "autoencoder.weights_sha256 is {}, expected {want} (the weights changed)",
                    ae.weights_sha256.as_deref().unwrap_or("absent")
                ));
            }
        }
        if self.resolution != expected.resolution {
            diff.push(format!(
                "resolution is {}, expected {}",
                self.resolution, expected.resolution
            ));
        }
        if self.latent_dtype != expected.latent_dtype {
            diff.push(format!(
                "latent_dtype is {:?}, expected {:?}",
                self.latent_dtype, expected.latent_dtype
            ));
        }
        if diff.is_empty() {
            return Ok(());
        }
        Err(DataError::Invalid(format!(
            "{}: stale latent cache, made differently from what this run expects: {}; \
             recompute the shards (flowscale precompute) or point data.path elsewhere",
            manifest.display(),
            diff.join("; ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn example() -> ShardManifest {
        ShardManifest {
            format_version: MANIFEST_VERSION,
            autoencoder: AutoencoderInfo {
                kind: "autoencoder-kl".into(),
                name: "sd3-vae".into(),
                weights_sha256: Some("ab".repeat(32)),
                latent_channels: 16,
                downsample_factor: 8,
                scaling_factor: 1.5305,
                shift_factor: 0.0609,
            },
            resolution: 256,
            latent_shape: [16, 32, 32],
            latent_dtype: LatentDtype::Float16,
            has_flip: true,
            latent_stats: None,
            has_labels: true,
            class_names: vec!["tench".into(), "goldfish".into()],
            has_captions: false,
            text: Some(TextEmbeddingInfo {
                encoder: "all-MiniLM-L6-v2".into(),
                context_shape: [77, 384],
                pooled_shape: [384],
                sources: Vec::new(),
            }),
            caption_fields: Vec::new(),
            buckets: Vec::new(),
            splits: Splits {
                train: vec![ShardEntry {
                    file: "train-000000.tar".into(),
                    samples: 100,
                    bytes: 4096,
                    bucket: None,
                }],
                val: vec![],
            },
        }
    }

    fn expectation() -> CacheExpectation {
        CacheExpectation {
            autoencoder_kind: "autoencoder-kl".into(),
            autoencoder_name: "sd3-vae".into(),
            weights_sha256: Some("AB".repeat(32)),
            resolution: 256,
            latent_dtype: LatentDtype::Float16,
        }
    }

    #[test]
    fn round_trips_through_the_file_and_leaves_no_temporary() {
        let tmp = tempfile::tempdir().unwrap();
        let m = example();
        m.save(tmp.path()).unwrap();
        assert_eq!(ShardManifest::load(tmp.path()).unwrap(), m);
        let names: Vec<String> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [MANIFEST_FILE]);
        assert_eq!(m.samples(ShardSplit::Train), 100);
        assert_eq!(m.samples(ShardSplit::Val), 0);
    }

    /// Found by `scripts/fuzz manifest`: serde_json's default float parsing is off by an ulp for
    /// some inputs, so a scaling factor written as 1.900018048772776 read back as
    /// 1.9000180487727762 (a manifest no longer equal to itself after a save and a load). The
    /// workspace now enables serde_json's `float_roundtrip`.
    #[test]
    fn floats_read_back_bit_for_bit() {
        let tmp = tempfile::tempdir().unwrap();
        let mut m = example();
        m.autoencoder.scaling_factor = 1.900018048772776;
        m.autoencoder.shift_factor = 1.5000011111111113e63;
        m.save(tmp.path()).unwrap();
        let back = ShardManifest::load(tmp.path()).unwrap();
        assert_eq!(back, m);
        let parsed = ShardManifest::parse(
            &serde_json::to_string(&m).unwrap(),
            Path::new("manifest.json"),
        )
        .unwrap();
        assert_eq!(
            parsed.autoencoder.scaling_factor.to_bits(),
            1.900018048772776f64.to_bits()
        );
    }

    #[test]
    fn bad_fields_are_named_with_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = ShardManifest::path(tmp.path());
        let mut v = serde_json::to_value(example()).unwrap();
        v["latent_shape"] = serde_json::json!([16, 32]);
        std::fs::write(&path, v.to_string()).unwrap();
        let err = ShardManifest::load(tmp.path()).unwrap_err().to_string();
        assert!(
            err.contains("manifest.json") && err.contains("latent_shape"),
            "{err}"
        );
        type Breaker = fn(&mut ShardManifest);
        let cases: Vec<(Breaker, &str)> = vec![
            (|m| m.latent_shape = [4, 32, 32], "latent_shape: 4 channels"),
            (|m| m.latent_shape = [16, 16, 16], "resolution 256"),
            (|m| m.class_names.clear(), "class_names"),
            (|m| m.format_version = 9, "format_version"),
            (
                |m| m.splits.train[0].file = "../x.tar".into(),
                "plain file name",
            ),
            (|m| m.splits.val = m.splits.train.clone(), "listed twice"),
            (
                |m| m.autoencoder.weights_sha256 = Some("xyz".into()),
                "weights_sha256",
            ),
        ];
        for (break_it, expect) in cases {
            let mut m = example();
            break_it(&mut m);
            std::fs::write(&path, serde_json::to_string(&m).unwrap()).unwrap();
            let err = ShardManifest::load(tmp.path()).unwrap_err().to_string();
            assert!(
                err.contains("manifest.json") && err.contains(expect),
                "{err}"
            );
            // Saving refuses it too.
            assert!(m.save(tmp.path()).is_err());
        }
    }

    /// Format 1 manifests (before latent statistics) still read; statistics are format 2 only
    /// and must fit the latent channels.
    #[test]
    fn format_1_reads_and_latent_statistics_are_checked() {
        let mut m = example();
        m.format_version = 1;
        assert!(m.validate().is_ok());
        let c = m.latent_shape[0] as usize;
        let stats = LatentStats {
            values: 10,
            mean: 0.1,
            std: 0.9,
            channel_mean: vec![0.1; c],
            channel_std: vec![0.9; c],
        };
        m.latent_stats = Some(stats.clone());
        assert!(m
            .validate()
            .unwrap_err()
            .contains("not part of format_version 1"));
        m.format_version = 2;
        assert!(m.validate().is_ok());
        m.latent_stats = Some(LatentStats {
            std: 0.0,
            ..stats.clone()
        });
        assert!(m.validate().unwrap_err().contains("latent_stats"));
        m.latent_stats = Some(LatentStats {
            channel_std: vec![0.9; c + 1],
            ..stats
        });
        assert!(m.validate().unwrap_err().contains("latent channels"));
        m.format_version = 4;
        assert!(m.validate().unwrap_err().contains("versions 1 to 3"));
    }

    #[test]
    fn format_3_buckets_are_checked_and_give_each_bucket_its_latent_shape() {
        let mut m = example();
        m.format_version = 3;
        m.buckets = vec![
            BucketEntry {
                width: 256,
                height: 256,
            },
            BucketEntry {
                width: 320,
                height: 192,
            },
        ];
        m.splits.train[0].bucket = Some(1);
        let path = Path::new("/x/manifest.json");
        let back = ShardManifest::parse(&serde_json::to_string(&m).unwrap(), path).unwrap();
        assert_eq!(back, m);
        assert_eq!(m.latent_shape_of(Some(1)), [16, 24, 40]);
        assert_eq!(m.latent_shape_of(None), [16, 32, 32]);
        assert_eq!(m.bucket_shards(ShardSplit::Train, 1).len(), 1);
        assert!(m.bucket_shards(ShardSplit::Train, 0).is_empty());
        let fails = |f: fn(&mut ShardManifest), what: &str| {
            let mut bad = m.clone();
            f(&mut bad);
            let e = bad.validate().unwrap_err();
            assert!(e.contains(what), "{e}");
        };
        fails(|m| m.format_version = 2, "not part of format_version 2");
        fails(|m| m.splits.train[0].bucket = None, "has no bucket");
        fails(|m| m.splits.train[0].bucket = Some(2), "in bucket 2");
        fails(
            |m| m.buckets[1].width = 324,
            "multiple of downsample_factor 8",
        );
        fails(|m| m.buckets[1] = m.buckets[0], "listed twice");
        // A shard set without buckets may not name one.
        fails(
            |m| {
                m.buckets.clear();
                m.format_version = 2;
            },
            "in bucket 1",
        );
        // Unbucketed manifests keep the older format.
        assert_eq!(ShardManifest::format_for(false), 2);
        assert_eq!(ShardManifest::format_for(true), 3);
    }

    #[test]
    fn a_stale_cache_is_refused_naming_each_difference() {
        let m = example();
        let p = Path::new("/data/shards/manifest.json");
        m.check_matches(&expectation(), p).unwrap();
        let mut e = expectation();
        e.resolution = 512;
        e.weights_sha256 = Some("cd".repeat(32));
        e.latent_dtype = LatentDtype::Float32;
        let err = m.check_matches(&e, p).unwrap_err().to_string();
        for part in [
            "/data/shards/manifest.json",
            "resolution is 256, expected 512",
            "weights_sha256",
            "latent_dtype is Float16, expected Float32",
        ] {
            assert!(err.contains(part), "{part}: {err}");
        }
        assert!(!err.contains("autoencoder.kind"), "{err}");
        // No hash expected: not compared.
        e = expectation();
        e.weights_sha256 = None;
        m.check_matches(&e, p).unwrap();
    }
}
