//! The precompute config (`flowscale precompute CONFIG`): which dataset, how images are prepared,
//! which autoencoder and text encoder, and how the shards are laid out. Relative paths are
//! resolved against the current directory, as in run configs. The file speaks flowscale's config
//! dialect ([`flowscale_core::config`]): unknown keys are refused, `--set key.path=value`
//! overrides a key, and every bad value is reported at once with its dotted key.
//!
//! ```toml
//! [source]
//! kind = "emoji"                     # imagenet | webdataset | folder | emoji | fashion-mnist
//! path = ".assets/emoji-datasource-google"
//! caption_fields = ["txt"]           # webdataset/folder: ["txt", "syn"] also reads <key>.syn.txt
//!
//! [preprocess]
//! resolution = 64
//! flip = true                        # also store the mirrored image's latent
//!
//! [autoencoder]
//! kind = "taef2"                     # kl | taef2 | identity
//! path = "../shared/assets/taef2"
//!
//! [output]
//! dir = "data/emoji-64-taef2"
//! samples_per_shard = 256
//! val_samples = 64
//! ```

use super::bucket_config::BucketsSection;
use super::caption_fields;
use crate::error::Result;
use crate::images::decode::MAX_SIDE;
use crate::images::resample::Filter;
use crate::shards::LatentDtype;
use flowscale_core::config::{self, Validate, Validator};
use flowscale_encoders::autoencoders::AutoencoderSpec;
use flowscale_encoders::text::config::WeightDtype;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where the images come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SourceConfig {
    /// ILSVRC-2012: `train_dir/<wnid>/*.JPEG`, classes from `mapping`
    /// (`LOC_synset_mapping.txt`); the validation images, when given, become the val split.
    Imagenet {
        mapping: PathBuf,
        train_dir: PathBuf,
        #[serde(default)]
        val_dir: Option<PathBuf>,
        /// `LOC_val_solution.csv` (format "loc-csv"), one wnid per line ("wnid-lines"), or the
        /// devkit's ground truth ("devkit", with `val_synsets`).
        #[serde(default)]
        val_labels: Option<PathBuf>,
        #[serde(default)]
        val_labels_format: ValLabelsFormat,
        #[serde(default)]
        val_synsets: Option<PathBuf>,
        /// Seed of the synonym drawn for each caption ("a photo of a <name>").
        #[serde(default)]
        caption_seed: u64,
        /// Caption fields read, `txt` first ([`caption_fields`]); the default `["txt"]` is left
        /// out of the fingerprint.
        #[serde(
            default = "caption_fields::primary_only",
            skip_serializing_if = "caption_fields::is_primary_only"
        )]
        caption_fields: Vec<String>,
    },
    /// img2dataset/WebDataset tar shards (CC12M): `<key>.jpg` + `<key>.txt`. One latent shard is
    /// written per input shard; the last `val_shards` input shards become the val split.
    Webdataset {
        path: PathBuf,
        /// Keep samples without a `.txt` (unconditional) instead of skipping them.
        #[serde(default)]
        captions_optional: bool,
        #[serde(default)]
        val_shards: usize,
        /// Caption fields read, `txt` first ([`caption_fields`]); further fields come from
        /// `<key>.<field>.txt` (`000123.syn.txt`). The default `["txt"]` is left out of the
        /// fingerprint.
        #[serde(
            default = "caption_fields::primary_only",
            skip_serializing_if = "caption_fields::is_primary_only"
        )]
        caption_fields: Vec<String>,
    },
    /// Every image under `path`; labels from the first-level subfolders when asked.
    Folder {
        path: PathBuf,
        #[serde(default)]
        labels_from_subfolders: bool,
        /// Caption fields read, `txt` first ([`caption_fields`]); further fields come from
        /// sidecars `<stem>.<field>.txt` (`cat.syn.txt`). The default `["txt"]` is left out of
        /// the fingerprint.
        #[serde(
            default = "caption_fields::primary_only",
            skip_serializing_if = "caption_fields::is_primary_only"
        )]
        caption_fields: Vec<String>,
    },
    /// The npm package `emoji-datasource-google` (captioned by name, labelled by category).
    Emoji {
        path: PathBuf,
        /// Caption fields read, `txt` first ([`caption_fields`]); the default `["txt"]` is left
        /// out of the fingerprint.
        #[serde(
            default = "caption_fields::primary_only",
            skip_serializing_if = "caption_fields::is_primary_only"
        )]
        caption_fields: Vec<String>,
    },
    /// Fashion-MNIST's IDX files (or MNIST's, same names): train, and t10k as the val split.
    FashionMnist {
        #[serde(default = "default_fashion_dir")]
        path: PathBuf,
        /// Caption fields read, `txt` first ([`caption_fields`]); the default `["txt"]` is left
        /// out of the fingerprint.
        #[serde(
            default = "caption_fields::primary_only",
            skip_serializing_if = "caption_fields::is_primary_only"
        )]
        caption_fields: Vec<String>,
    },
}

/// How ImageNet's validation labels are given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ValLabelsFormat {
    /// `LOC_val_solution.csv`.
    #[default]
    LocCsv,
    /// One wnid per line, in file-name order.
    WnidLines,
    /// The devkit's `ILSVRC2012_validation_ground_truth.txt` (ids into `val_synsets`).
    Devkit,
}

fn default_fashion_dir() -> PathBuf {
    PathBuf::from(crate::fashion_mnist::DEBIAN_DIR)
}

impl SourceConfig {
    /// Whether the source has its own validation split (then `output.val_samples` is refused).
    pub fn has_native_val(&self) -> bool {
        matches!(
            self,
            SourceConfig::Imagenet { .. }
                | SourceConfig::FashionMnist { .. }
                | SourceConfig::Webdataset { .. }
        )
    }

    /// The caption fields read from the source, `txt` first.
    pub fn caption_fields(&self) -> &[String] {
        match self {
            SourceConfig::Imagenet { caption_fields, .. }
            | SourceConfig::Webdataset { caption_fields, .. }
            | SourceConfig::Folder { caption_fields, .. }
            | SourceConfig::Emoji { caption_fields, .. }
            | SourceConfig::FashionMnist { caption_fields, .. } => caption_fields,
        }
    }

    /// The caption fields after `txt`.
    pub fn further_caption_fields(&self) -> &[String] {
        caption_fields::further(self.caption_fields())
    }

    pub fn kind_name(&self) -> &'static str {
        match self {
            SourceConfig::Imagenet { .. } => "imagenet",
            SourceConfig::Webdataset { .. } => "webdataset",
            SourceConfig::Folder { .. } => "folder",
            SourceConfig::Emoji { .. } => "emoji",
            SourceConfig::FashionMnist { .. } => "fashion-mnist",
        }
    }
}

impl Validate for SourceConfig {
    fn validate(&self, v: &mut Validator) {
        let has_further = matches!(
            self,
            SourceConfig::Webdataset { .. } | SourceConfig::Folder { .. }
        );
        caption_fields::validate(self.caption_fields(), self.kind_name(), has_further, v);
        if let SourceConfig::Webdataset {
            captions_optional: true,
            ..
        } = self
        {
            if !self.further_caption_fields().is_empty() {
                v.fail(
                    "captions_optional",
                    "further caption fields need every sample captioned (they are compared on \
                     the same images)",
                );
            }
        }
        if let SourceConfig::Imagenet {
            val_dir,
            val_labels,
            val_labels_format,
            val_synsets,
            ..
        } = self
        {
            match (val_dir, val_labels) {
                (Some(_), None) => v.fail("val_labels", "required with source.val_dir"),
                (None, Some(_)) => v.fail("val_dir", "required with source.val_labels"),
                _ => {}
            }
            if *val_labels_format == ValLabelsFormat::Devkit && val_synsets.is_none() {
                v.fail("val_synsets", "the devkit format needs the synset list");
            }
        }
    }
}

/// The image protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreprocessSection {
    pub resolution: u32,
    /// "bicubic" (PIL's BICUBIC, the default) or "lanczos".
    #[serde(default = "default_filter")]
    pub filter: String,
    #[serde(default)]
    pub flip: bool,
    /// Abort when more than this fraction of the samples seen are unusable.
    #[serde(default = "default_max_bad_fraction")]
    pub max_bad_fraction: f64,
    /// Aspect-ratio buckets; without them every image is the `resolution` square. Left out of
    /// the fingerprint when absent, so directories made before buckets existed still resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<BucketsSection>,
}

impl Validate for PreprocessSection {
    fn validate(&self, v: &mut Validator) {
        // No image is decoded beyond MAX_SIDE, so no larger resolution can be filled.
        v.count_in("resolution", u64::from(self.resolution), 1, MAX_SIDE as u64);
        if let Err(e) = Filter::parse(&self.filter) {
            v.fail("filter", e);
        }
        v.in_range("max_bad_fraction", self.max_bad_fraction, 0.0, 1.0, false);
        if let Some(b) = &self.buckets {
            b.validate(self.resolution, v);
        }
    }
}

fn default_filter() -> String {
    "bicubic".into()
}

fn default_max_bad_fraction() -> f64 {
    0.01
}

/// The autoencoder and how it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoencoderSection {
    /// "kl", "taef2" or "identity".
    pub kind: String,
    /// The diffusers folder (kl) or TAEF2 folder (taef2); none for identity.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Weights dtype: "fp32" (default), "bf16" or "fp16".
    #[serde(default)]
    pub dtype: WeightDtype,
    /// Images per encoder call.
    #[serde(default = "default_encode_batch")]
    pub batch_size: usize,
}

impl AutoencoderSection {
    /// The autoencoder these keys name; the error names the key.
    pub fn spec(&self) -> std::result::Result<AutoencoderSpec, String> {
        AutoencoderSpec::new(&self.kind, self.path.clone())
            .map_err(|(field, reason)| format!("key autoencoder.{field}: {reason}"))
    }
}

impl Validate for AutoencoderSection {
    fn validate(&self, v: &mut Validator) {
        if let Err((field, reason)) = AutoencoderSpec::new(&self.kind, self.path.clone()) {
            v.fail(field, reason);
        }
        v.count_at_least("batch_size", self.batch_size as u64, 1);
    }
}

fn default_encode_batch() -> usize {
    16
}

/// Text embeddings stored with each sample (fp16), from a text-encoder config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextSection {
    /// A text-encoder config (as `configs/text/*.toml`).
    pub config: PathBuf,
    #[serde(default = "default_text_batch")]
    pub batch_size: usize,
}

impl Validate for TextSection {
    fn validate(&self, v: &mut Validator) {
        v.count_at_least("batch_size", self.batch_size as u64, 1);
    }
}

fn default_text_batch() -> usize {
    64
}

/// The shard directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSection {
    pub dir: PathBuf,
    /// Source samples per shard (listed sources; skipped samples leave a shard shorter).
    #[serde(default = "default_samples_per_shard")]
    pub samples_per_shard: usize,
    /// "float16" (default) or "float32" for the stored moments.
    #[serde(default = "default_latent_dtype")]
    pub latent_dtype: LatentDtype,
    /// Held-out samples for sources without a val split of their own (folder, emoji).
    #[serde(default)]
    pub val_samples: usize,
    /// Listed sources are written in the order of a permutation with this seed, so that a
    /// shard mixes classes (ImageNet's listing is sorted by class); `None` keeps the order.
    #[serde(default = "default_shuffle_seed")]
    pub shuffle_seed: Option<u64>,
    /// "auto" (CUDA when present), "cpu", "cuda" or "cuda:N".
    #[serde(default = "default_device")]
    pub device: String,
}

impl Validate for OutputSection {
    fn validate(&self, v: &mut Validator) {
        v.count_at_least("samples_per_shard", self.samples_per_shard as u64, 1);
        if let Err(e) = parse_device(&self.device) {
            v.fail("device", e);
        }
    }
}

fn default_samples_per_shard() -> usize {
    1000
}

fn default_latent_dtype() -> LatentDtype {
    LatentDtype::Float16
}

fn default_shuffle_seed() -> Option<u64> {
    Some(0)
}

fn default_device() -> String {
    "auto".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrecomputeConfig {
    pub source: SourceConfig,
    pub preprocess: PreprocessSection,
    pub autoencoder: AutoencoderSection,
    #[serde(default)]
    pub text: Option<TextSection>,
    pub output: OutputSection,
}

impl Validate for PrecomputeConfig {
    fn validate(&self, v: &mut Validator) {
        v.section("source", &self.source);
        v.section("preprocess", &self.preprocess);
        v.section("autoencoder", &self.autoencoder);
        if let Some(text) = &self.text {
            v.section("text", text);
        }
        v.section("output", &self.output);
        if self.output.val_samples > 0 && self.source.has_native_val() {
            let hint = if matches!(self.source, SourceConfig::Webdataset { .. }) {
                " (use source.val_shards)"
            } else {
                ""
            };
            v.fail(
                "output.val_samples",
                format!(
                    "the {} source has its own val split{hint}",
                    self.source.kind_name()
                ),
            );
        }
    }
}

impl PrecomputeConfig {
    /// Reads and validates a TOML config; errors name the file and every bad key.
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_with(path, &[])
    }

    /// [`PrecomputeConfig::load`] with `--set key.path=value` overrides applied in order.
    pub fn load_with(path: &Path, overrides: &[String]) -> Result<Self> {
        Ok(config::load(path, overrides)?)
    }

    /// Parses and validates `text` (`path` names it in errors).
    pub fn from_toml(text: &str, path: &Path) -> Result<Self> {
        Ok(config::load_str(text, path, &[])?)
    }

    /// The preprocessing of the images.
    pub fn preprocess_config(&self) -> crate::PreprocessConfig {
        crate::PreprocessConfig {
            resolution: self.preprocess.resolution as usize,
            filter: Filter::parse(&self.preprocess.filter).expect("validated"),
            flip: self.preprocess.flip,
            buckets: self
                .preprocess
                .buckets
                .as_ref()
                .map(|b| b.buckets(self.preprocess.resolution).expect("validated")),
        }
    }

    /// What decides the shards' content (everything but batch sizes and the device), as JSON:
    /// a shard directory made with a different value is refused rather than extended.
    pub fn content_fingerprint(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("serializable");
        v["autoencoder"]
            .as_object_mut()
            .expect("object")
            .remove("batch_size");
        v["output"]
            .as_object_mut()
            .expect("object")
            .remove("device");
        if let Some(t) = v.get_mut("text").and_then(|t| t.as_object_mut()) {
            t.remove("batch_size");
        }
        v
    }
}

/// A device by name: "auto" is the first CUDA device when there is one, else the CPU.
pub fn parse_device(name: &str) -> std::result::Result<tch::Device, String> {
    match name {
        "auto" => Ok(tch::Device::cuda_if_available()),
        "cpu" => Ok(tch::Device::Cpu),
        "cuda" => Ok(tch::Device::Cuda(0)),
        other => other
            .strip_prefix("cuda:")
            .and_then(|i| i.parse().ok())
            .map(tch::Device::Cuda)
            .ok_or_else(|| format!("unknown device {other:?} (auto, cpu, cuda, cuda:N)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::DataError;
    use flowscale_core::config::ConfigError;

    const MINIMAL: &str = r#"
        [source]
        kind = "folder"
        path = "images"
        [preprocess]
        resolution = 64
        [autoencoder]
        kind = "identity"
        [output]
        dir = "out"
    "#;

    fn parse(text: &str) -> Result<PrecomputeConfig> {
        PrecomputeConfig::from_toml(text, Path::new("p.toml"))
    }

    #[test]
    fn a_resolution_no_image_can_fill_is_refused_before_anything_runs() {
        // 100000 px used to reach the resampler's allocation and abort the process.
        let text = MINIMAL.replace("resolution = 64", "resolution = 100000");
        assert!(text.contains("100000"), "{text}");
        let e = parse(&text).unwrap_err().to_string();
        assert!(
            e.contains("preprocess.resolution") && e.contains("[1, 16384]"),
            "{e}"
        );
    }

    #[test]
    fn defaults_of_a_minimal_config() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.output.samples_per_shard, 1000);
        assert_eq!(c.output.latent_dtype, LatentDtype::Float16);
        assert_eq!(c.output.shuffle_seed, Some(0));
        assert_eq!(c.preprocess.max_bad_fraction, 0.01);
        assert!(!c.preprocess.flip);
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("resolution = 64", "resolution = 0", "preprocess.resolution"),
            (
                "kind = \"identity\"",
                "kind = \"vqgan\"",
                "autoencoder.kind",
            ),
            (
                "kind = \"identity\"",
                "kind = \"taef2\"",
                "autoencoder.path",
            ),
            (
                "dir = \"out\"",
                "dir = \"out\"\ndevice = \"tpu\"",
                "output.device",
            ),
            (
                "dir = \"out\"",
                "dir = \"out\"\nsamples_per_shard = 0",
                "samples_per_shard",
            ),
            (
                "dir = \"out\"",
                "dir = \"out\"\nlatent_dtype = \"int8\"",
                "latent_dtype",
            ),
            ("dir = \"out\"", "dir = \"out\"\nshards = 3", "shards"),
            ("kind = \"folder\"", "kind = \"lmdb\"", "source"),
        ];
        for (from, to, key) in cases {
            let text = MINIMAL.replacen(from, to, 1);
            let err = parse(&text).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains("p.toml"), "{to}: {err}");
        }
    }

    #[test]
    fn val_samples_are_refused_for_sources_with_their_own_split() {
        let text = MINIMAL
            .replace(
                "kind = \"folder\"\n        path = \"images\"",
                "kind = \"fashion-mnist\"",
            )
            .replace("dir = \"out\"", "dir = \"out\"\nval_samples = 10");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("output.val_samples"), "{err}");
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_dotted_key() {
        let text = MINIMAL
            .replace("resolution = 64", "resolution = 0\nmax_bad_fraction = 2.0")
            .replace("dir = \"out\"", "dir = \"out\"\nsamples_per_shard = 0");
        let err = parse(&text).unwrap_err();
        let DataError::Config(ConfigError::Invalid { path, problems }) = &err else {
            panic!("not a config error: {err:?}");
        };
        assert_eq!(path, Path::new("p.toml"));
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "preprocess.resolution",
                "preprocess.max_bad_fraction",
                "output.samples_per_shard"
            ]
        );
        let msg = err.to_string();
        for key in &keys {
            assert!(msg.contains(&format!("key `{key}`")), "{msg}");
        }
        assert!(msg.contains("must be in [0, 1]"), "{msg}");
    }

    #[test]
    fn an_unknown_key_is_named_with_what_is_allowed() {
        let text = MINIMAL.replace("resolution = 64", "resolution = 64\nresolutoin = 32");
        let err = parse(&text).unwrap_err();
        assert!(matches!(err, DataError::Config(ConfigError::Schema { .. })));
        let msg = err.to_string();
        assert!(
            msg.contains("p.toml")
                && msg.contains("preprocess.resolutoin")
                && msg.contains("unknown field")
                && msg.contains("max_bad_fraction"),
            "{msg}"
        );
    }

    #[test]
    fn set_overrides_a_key_and_is_validated_like_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, MINIMAL).unwrap();
        let set = |args: &[&str]| {
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            PrecomputeConfig::load_with(&path, &args)
        };
        let c = set(&["output.samples_per_shard=7", "preprocess.flip=true"]).unwrap();
        assert_eq!(c.output.samples_per_shard, 7);
        assert!(c.preprocess.flip);
        assert_eq!(c.source, PrecomputeConfig::load(&path).unwrap().source);
        let msg = set(&["output.device=tpu"]).unwrap_err().to_string();
        assert!(
            msg.contains("key `output.device`") && msg.contains("--set"),
            "{msg}"
        );
        let msg = set(&["output.shards=3"]).unwrap_err().to_string();
        assert!(msg.contains("output.shards"), "{msg}");
    }

    #[test]
    fn the_fingerprint_of_an_unchanged_config_is_the_one_shard_directories_record() {
        // Shard directories written before the config moved onto the dialect record exactly
        // this JSON; a change here would make them refuse to resume.
        let want = serde_json::json!({
            "source": {"kind": "folder", "path": "images", "labels_from_subfolders": false},
            "preprocess": {
                "resolution": 64, "filter": "bicubic", "flip": false, "max_bad_fraction": 0.01
            },
            "autoencoder": {"kind": "identity", "path": null, "dtype": "fp32"},
            "text": null,
            "output": {
                "dir": "out", "samples_per_shard": 1000, "latent_dtype": "float16",
                "val_samples": 0, "shuffle_seed": 0
            }
        });
        assert_eq!(parse(MINIMAL).unwrap().content_fingerprint(), want);
    }

    #[test]
    fn the_fingerprint_ignores_batch_sizes_and_device_only() {
        let a = parse(MINIMAL).unwrap();
        let mut b = a.clone();
        b.autoencoder.batch_size = 3;
        b.output.device = "cpu".into();
        assert_eq!(a.content_fingerprint(), b.content_fingerprint());
        b.preprocess.flip = true;
        assert_ne!(a.content_fingerprint(), b.content_fingerprint());
    }
}
