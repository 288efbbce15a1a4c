//! The eval config (`flowscale eval RUN --config EVAL.toml`): which weights, the validation
//! protocol, the sampler settings and sample count, FID and the classifier. Every key has a
//! default (the paper's protocol where it has one), so an empty file is a valid config.

use flowscale_formulations::SamplerFrame;
use flowscale_train::config::{Validate, Validator};
use flowscale_train::sampling::setting_label;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    #[serde(default)]
    pub eval: EvalSection,
    #[serde(default)]
    pub validation: ValidationSection,
    #[serde(default)]
    pub sampling: SamplingSection,
    #[serde(default)]
    pub fid: FidSection,
    #[serde(default)]
    pub classifier: ClassifierSection,
    #[serde(default)]
    pub clip: ClipSection,
    #[serde(default)]
    pub prompts: PromptsSection,
}

/// What the samples are conditioned on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptsSection {
    /// `auto`: classes for class-conditional runs; for text runs the COCO set when
    /// `coco_captions` is given, else the val split's captions. `classes`, `val` or `coco`
    /// choose explicitly.
    #[serde(default = "default_prompt_source")]
    pub source: String,
    /// A COCO-2014-style caption file (`captions_val2014.json`: `images` with `id` and
    /// `file_name`, `annotations` with `image_id` and `caption`); sample `i` uses the first
    /// caption of the `i`-th image by id.
    #[serde(default)]
    pub coco_captions: String,
    /// The folder of the COCO images (the FID reference of a COCO evaluation).
    #[serde(default)]
    pub coco_images: String,
    /// Text-encoder config that encodes the prompts; empty: the run's
    /// `conditioning.text_encoder`. Runs trained on stored embeddings need one for COCO.
    #[serde(default)]
    pub text_encoder: String,
}

impl Default for PromptsSection {
    fn default() -> Self {
        Self {
            source: default_prompt_source(),
            coco_captions: String::new(),
            coco_images: String::new(),
            text_encoder: String::new(),
        }
    }
}

fn default_prompt_source() -> String {
    "auto".into()
}

impl Validate for PromptsSection {
    fn validate(&self, v: &mut Validator) {
        if !["auto", "classes", "val", "coco"].contains(&self.source.as_str()) {
            v.fail(
                "source",
                format!(
                    "`{}` is not \"auto\", \"classes\", \"val\" or \"coco\"",
                    self.source
                ),
            );
        }
        if self.source == "coco" && self.coco_captions.is_empty() {
            v.fail("coco_captions", "is required with source = \"coco\"");
        }
        if !self.coco_captions.is_empty() && self.coco_images.is_empty() {
            v.fail(
                "coco_images",
                "is required with coco_captions (the FID reference images)",
            );
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSection {
    /// Weights to evaluate: "raw", "ema" (every EMA of the run), "ema:DECAY", "phema" (every
    /// power-function EMA of the checkpoint) or "phema:STD".
    #[serde(default = "default_weights")]
    pub weights: Vec<String>,
    /// "auto", "cpu" or "cuda".
    #[serde(default = "default_device")]
    pub device: String,
    /// Output folder; empty: `<run>/eval/step-<N>`.
    #[serde(default)]
    pub out_dir: String,
    /// Seed of the fixed sampling noise.
    #[serde(default)]
    pub seed: u64,
    /// The `dataset` column of every result row (Table 1 ranks per dataset); empty: the run's
    /// dataset (the shard folder's name for latent shards).
    #[serde(default)]
    pub dataset: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidationSection {
    /// Whether to compute the validation loss.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Held-out samples; 0: the run's `validation.samples`.
    #[serde(default)]
    pub samples: u64,
    /// Levels; 0: the run's `validation.levels`.
    #[serde(default)]
    pub levels: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplerSpec {
    pub steps: usize,
    pub cfg: f64,
    /// `rf` (the default: every formulation on the RF path on SD3's sigmas, the paper's
    /// protocol) or `native` (the formulation's own ODE and schedule); docs/protocol.md
    /// section 7. Left out of the resolved config when it is the default.
    #[serde(default, skip_serializing_if = "is_rf")]
    pub frame: SamplerFrame,
}

fn is_rf(frame: &SamplerFrame) -> bool {
    *frame == SamplerFrame::Rf
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingSection {
    /// Samples per setting (the paper: 1000); labels cycle through the classes.
    #[serde(default = "default_n")]
    pub n: u64,
    #[serde(default = "default_batch")]
    pub batch_size: u64,
    /// Sampler settings (Euler): `{steps, cfg}`, with `frame = "native"` for the native frame;
    /// default the paper's six.
    #[serde(default = "default_settings")]
    pub settings: Vec<SamplerSpec>,
    /// Schedule shift; 0: the run's `formulation.shift`.
    #[serde(default)]
    pub shift: f64,
    /// Columns of the saved sample grid (its first `grid_rows` rows of the N samples).
    #[serde(default = "default_grid_cols")]
    pub grid_cols: u32,
    #[serde(default = "default_grid_rows")]
    pub grid_rows: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FidSection {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// "inception" (Inception-v3 pool3, the default) or "clip" (the image embeddings of
    /// `clip.model`, the paper's choice).
    #[serde(default = "default_feature_network")]
    pub feature_network: String,
    /// The TorchScript Inception file (scripts/setup fetches it).
    #[serde(default = "default_inception")]
    pub weights: String,
    /// Reference images: "held-out" (the run's test split, as the model sees it) or a folder of
    /// PNGs.
    #[serde(default = "default_reference")]
    pub reference: String,
    /// Held-out images used for the reference statistics (when `reference = "held-out"`).
    #[serde(default = "default_reference_n")]
    pub reference_n: u64,
    #[serde(default = "default_stats_cache")]
    pub cache_dir: String,
    #[serde(default = "default_fid_batch")]
    pub batch_size: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipSection {
    /// A Hugging Face `CLIPModel` folder; empty (the default): no CLIP score, and FID cannot
    /// use CLIP features.
    #[serde(default)]
    pub model: String,
    /// CLIP's BPE merges, gzip-compressed (scripts/setup fetches them).
    #[serde(default = "default_clip_tokenizer")]
    pub tokenizer: String,
    /// Caption of a sample of class `c`: `{}` is replaced by the class name.
    #[serde(default = "default_caption")]
    pub caption: String,
    #[serde(default = "default_clip_batch")]
    pub batch_size: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierSection {
    /// Whether to score class adherence (class-conditional data only).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Weights file; trained on the run's training split and saved here when absent.
    #[serde(default = "default_classifier")]
    pub path: String,
    #[serde(default = "default_classifier_steps")]
    pub train_steps: u64,
    #[serde(default = "default_classifier_batch")]
    pub batch_size: u64,
    #[serde(default = "default_classifier_lr")]
    pub lr: f64,
    /// Labelled latent shards: at most this many images of each split are decoded to fit the
    /// classifier on.
    #[serde(default = "default_classifier_images")]
    pub max_images: u64,
}

fn default_classifier_images() -> u64 {
    10_000
}

fn yes() -> bool {
    true
}
fn default_weights() -> Vec<String> {
    vec!["raw".into(), "ema".into()]
}
fn default_device() -> String {
    "auto".into()
}
fn default_n() -> u64 {
    1000
}
fn default_batch() -> u64 {
    100
}
/// docs/protocol.md section 4: 50 steps at CFG 1.0, 2.5, 5.0; 5, 10, 25 steps at CFG 5.0.
pub fn default_settings() -> Vec<SamplerSpec> {
    [
        (50, 1.0),
        (50, 2.5),
        (50, 5.0),
        (5, 5.0),
        (10, 5.0),
        (25, 5.0),
    ]
    .into_iter()
    .map(|(steps, cfg)| SamplerSpec {
        steps,
        cfg,
        frame: SamplerFrame::Rf,
    })
    .collect()
}
fn default_grid_cols() -> u32 {
    10
}
fn default_grid_rows() -> u32 {
    4
}
fn default_inception() -> String {
    crate::inception::DEFAULT_WEIGHTS.into()
}
fn default_reference() -> String {
    "held-out".into()
}
fn default_reference_n() -> u64 {
    10_000
}
fn default_stats_cache() -> String {
    ".assets/fid-stats".into()
}
fn default_fid_batch() -> u64 {
    50
}
fn default_feature_network() -> String {
    "inception".into()
}
fn default_clip_tokenizer() -> String {
    ".assets/clip/bpe_simple_vocab_16e6.txt.gz".into()
}
fn default_caption() -> String {
    "a photo of a {}".into()
}
fn default_clip_batch() -> u64 {
    50
}
fn default_classifier() -> String {
    ".assets/classifiers/fashion-mnist-cnn.safetensors".into()
}
fn default_classifier_steps() -> u64 {
    1000
}
fn default_classifier_batch() -> u64 {
    128
}
fn default_classifier_lr() -> f64 {
    2e-3
}

impl Default for EvalSection {
    fn default() -> Self {
        Self {
            weights: default_weights(),
            device: default_device(),
            out_dir: String::new(),
            seed: 0,
            dataset: String::new(),
        }
    }
}

impl Default for ValidationSection {
    fn default() -> Self {
        Self {
            enabled: true,
            samples: 0,
            levels: 0,
        }
    }
}

impl Default for SamplingSection {
    fn default() -> Self {
        Self {
            n: default_n(),
            batch_size: default_batch(),
            settings: default_settings(),
            shift: 0.0,
            grid_cols: default_grid_cols(),
            grid_rows: default_grid_rows(),
        }
    }
}

impl Default for FidSection {
    fn default() -> Self {
        Self {
            enabled: true,
            feature_network: default_feature_network(),
            weights: default_inception(),
            reference: default_reference(),
            reference_n: default_reference_n(),
            cache_dir: default_stats_cache(),
            batch_size: default_fid_batch(),
        }
    }
}

impl Default for ClipSection {
    fn default() -> Self {
        Self {
            model: String::new(),
            tokenizer: default_clip_tokenizer(),
            caption: default_caption(),
            batch_size: default_clip_batch(),
        }
    }
}

impl Default for ClassifierSection {
    fn default() -> Self {
        Self {
            enabled: true,
            path: default_classifier(),
            train_steps: default_classifier_steps(),
            batch_size: default_classifier_batch(),
            lr: default_classifier_lr(),
            max_images: default_classifier_images(),
        }
    }
}

impl Validate for EvalConfig {
    fn validate(&self, v: &mut Validator) {
        v.section("eval", &self.eval);
        v.section("sampling", &self.sampling);
        v.section("fid", &self.fid);
        v.section("classifier", &self.classifier);
        v.section("clip", &self.clip);
        v.section("prompts", &self.prompts);
        if self.fid.enabled && self.fid.feature_network == "clip" && self.clip.model.is_empty() {
            v.fail(
                "fid.feature_network",
                "\"clip\" needs a CLIP model folder in clip.model",
            );
        }
    }
}

impl Validate for EvalSection {
    fn validate(&self, v: &mut Validator) {
        if self.weights.is_empty() {
            v.fail(
                "weights",
                "needs at least one of \"raw\", \"ema\", \"ema:DECAY\"",
            );
        }
        for w in &self.weights {
            let ok = w == "raw"
                || w == "ema"
                || w == "phema"
                || w.strip_prefix("ema:")
                    .or_else(|| w.strip_prefix("phema:"))
                    .is_some_and(|d| d.parse::<f64>().is_ok());
            if !ok {
                v.fail(
                    "weights",
                    format!(
                        "`{w}` is not \"raw\", \"ema\", \"ema:DECAY\", \"phema\" or \"phema:STD\""
                    ),
                );
            }
        }
        if !["auto", "cpu", "cuda"].contains(&self.device.as_str()) {
            v.fail(
                "device",
                format!("`{}` is not \"auto\", \"cpu\" or \"cuda\"", self.device),
            );
        }
    }
}

impl Validate for ValidationSection {
    fn validate(&self, _v: &mut Validator) {}
}

impl Validate for SamplingSection {
    fn validate(&self, v: &mut Validator) {
        v.count_at_least("n", self.n, 2);
        v.count_at_least("batch_size", self.batch_size, 1);
        if self.settings.is_empty() {
            v.fail("settings", "needs at least one {steps, cfg}");
        }
        for (i, s) in self.settings.iter().enumerate() {
            if s.steps == 0 {
                v.fail(&format!("settings[{i}].steps"), "must be >= 1");
            }
            v.at_least(&format!("settings[{i}].cfg"), s.cfg, 0.0, true);
        }
        v.at_least("shift", self.shift, 0.0, true);
    }
}

impl Validate for FidSection {
    fn validate(&self, v: &mut Validator) {
        if !["inception", "clip"].contains(&self.feature_network.as_str()) {
            v.fail(
                "feature_network",
                format!(
                    "`{}` is not \"inception\" or \"clip\"",
                    self.feature_network
                ),
            );
        }
        v.count_at_least("reference_n", self.reference_n, 2);
        v.count_at_least("batch_size", self.batch_size, 1);
    }
}

impl Validate for ClipSection {
    fn validate(&self, v: &mut Validator) {
        v.count_at_least("batch_size", self.batch_size, 1);
        if self.caption.matches("{}").count() != 1 {
            v.fail(
                "caption",
                format!(
                    "`{}` must contain `{{}}` once (the class name)",
                    self.caption
                ),
            );
        }
    }
}

impl ClipSection {
    /// The caption of class `name`.
    pub fn caption_for(&self, name: &str) -> String {
        self.caption.replacen("{}", name, 1)
    }
}

impl Validate for ClassifierSection {
    fn validate(&self, v: &mut Validator) {
        v.count_at_least("train_steps", self.train_steps, 1);
        v.count_at_least("batch_size", self.batch_size, 1);
        v.at_least("lr", self.lr, 0.0, false);
    }
}

impl SamplerSpec {
    /// The setting's name in results: `s<steps>_cfg<scale>`, `_native` appended in the native
    /// frame ([`setting_label`]).
    pub fn label(&self) -> String {
        setting_label(self.steps, self.cfg, self.frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn an_empty_file_takes_the_papers_sampler_settings_count_and_weights() {
        let c: EvalConfig =
            flowscale_train::config::load_str("", Path::new("e.toml"), &[]).unwrap();
        let labels: Vec<String> = c.sampling.settings.iter().map(|s| s.label()).collect();
        assert_eq!(
            labels,
            [
                "s50_cfg1",
                "s50_cfg2.5",
                "s50_cfg5",
                "s5_cfg5",
                "s10_cfg5",
                "s25_cfg5"
            ]
        );
        assert_eq!(c.sampling.n, 1000);
        assert_eq!(c.eval.weights, ["raw", "ema"]);
    }

    #[test]
    fn the_demo_eval_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/eval-demo.toml");
        let c: EvalConfig = flowscale_train::config::load(&path, &[]).unwrap();
        assert_eq!(c.sampling.n, 50);
        assert_eq!(c.sampling.settings, default_settings());
    }

    /// A setting's frame defaults to rf and names the setting when it is native; any other
    /// value is refused naming the key and the allowed values.
    #[test]
    fn a_settings_frame_is_rf_or_native() {
        let c: EvalConfig = flowscale_train::config::load_str(
            "[sampling]\nsettings = [{steps = 5, cfg = 5}, {steps = 5, cfg = 5, frame = \"native\"}]\n",
            Path::new("e.toml"),
            &[],
        )
        .unwrap();
        let labels: Vec<String> = c.sampling.settings.iter().map(|s| s.label()).collect();
        assert_eq!(labels, ["s5_cfg5", "s5_cfg5_native"]);
        let text = flowscale_train::config::to_toml_string(&c).unwrap();
        assert_eq!(text.matches("frame").count(), 1, "{text}");
        let e = flowscale_train::config::load_str::<EvalConfig>(
            "[sampling]\nsettings = [{steps = 5, cfg = 5, frame = \"ode\"}]\n",
            Path::new("e.toml"),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("sampling.settings[0].frame") && e.contains("expected `rf` or `native`"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_file_and_key() {
        let e = flowscale_train::config::load_str::<EvalConfig>(
            "[eval]\nweights = [\"best\"]\n[sampling]\nn = 1\n",
            Path::new("e.toml"),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("e.toml"), "{e}");
        assert!(e.contains("eval.weights") && e.contains("`best`"), "{e}");
        assert!(e.contains("sampling.n"), "{e}");
    }

    #[test]
    fn clip_features_need_a_clip_model_and_captions_a_placeholder() {
        let e = flowscale_train::config::load_str::<EvalConfig>(
            "[fid]\nfeature_network = \"clip\"\n[clip]\ncaption = \"a photo\"\n",
            Path::new("e.toml"),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("fid.feature_network") && e.contains("clip.model"),
            "{e}"
        );
        assert!(e.contains("clip.caption"), "{e}");
        let e = flowscale_train::config::load_str::<EvalConfig>(
            "[fid]\nfeature_network = \"dino\"\n",
            Path::new("e.toml"),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`dino`"), "{e}");
        let c: EvalConfig =
            flowscale_train::config::load_str("[clip]\nmodel = \"m\"\n", Path::new("e.toml"), &[])
                .unwrap();
        assert_eq!(c.fid.feature_network, "inception");
        assert_eq!(c.clip.caption_for("Sneaker"), "a photo of a Sneaker");
    }
}
