//! A run's checkpoint loaded for evaluation through the run layer (`flowscale_train::run`): the
//! run config the run recorded, its data and its model (backbone and conditioner, whatever the
//! provider) built by the code that trained it, and the checkpoint's weight sets (raw =
//! `model.safetensors`, EMAs = `ema-<decay>.safetensors`), any of which can be loaded into the
//! model.

use crate::conditions::PromptSource;
use crate::config::PromptsSection;
use crate::error::{EvalError, Result};
use flowscale_formulations::Formulation;
use flowscale_models::MmditConfig;
use flowscale_train::config::RunConfig;
use flowscale_train::run::{RunCheckpoint, RunData, RunModel, RunModelSpec, StepChoice, WeightSet};
use std::path::{Path, PathBuf};
use tch::Device;

pub struct LoadedRun {
    pub run_dir: PathBuf,
    pub checkpoint: PathBuf,
    pub step: u64,
    pub cfg: RunConfig,
    pub formulation: Formulation,
    pub data: RunData,
    pub model: RunModel,
    pub device: Device,
    ck: RunCheckpoint,
}

fn invalid(what: impl std::fmt::Display, e: impl std::fmt::Display) -> EvalError {
    EvalError::Invalid(format!("{what}: {e}"))
}

impl LoadedRun {
    /// Loads `source` (a run directory or one of its checkpoint folders) at `step`. A text run
    /// whose evaluation encodes prompts (`prompts`) gets its text encoder loaded: the one
    /// `prompts.text_encoder` names, else the run's `conditioning.text_encoder`.
    pub fn load(
        source: &Path,
        step: StepChoice,
        device: Device,
        prompts: &PromptsSection,
    ) -> Result<Self> {
        let ck = RunCheckpoint::open(source, step)?;
        let run_dir = ck
            .run_dir
            .clone()
            .ok_or_else(|| invalid(ck.dir().display(), "not inside <run>/checkpoints/"))?;
        let cfg = ck.run_config()?;
        // Every EMA the run keeps must be there: "ema" would otherwise evaluate fewer weight
        // sets than the run has, silently.
        for d in &cfg.ema.decays {
            ck.group(&flowscale_train::run::ema_group_name(*d))?;
        }
        let formulation = Formulation::parse(&cfg.formulation.name).map_err(|e| {
            invalid(
                format!(
                    "{}: formulation.name",
                    run_dir.join("config.resolved.toml").display()
                ),
                e,
            )
        })?;
        let data = RunData::open(&cfg.data, &cfg.conditioning, device, true)?;
        let mut spec = RunModelSpec::for_run(&cfg, &data)?;
        if PromptSource::resolve(prompts, data.cond_source())?.encodes_text() {
            let path = Some(prompts.text_encoder.clone())
                .filter(|p| !p.is_empty())
                .or_else(|| cfg.conditioning.text_encoder.clone())
                .ok_or_else(|| {
                    EvalError::Invalid(
                        "the prompts must be encoded, but neither prompts.text_encoder nor the \
                         run's conditioning.text_encoder names a text-encoder config"
                            .into(),
                    )
                })?;
            spec = spec.with_text_encoder(&path)?;
        }
        check_backbone(&ck, &spec.backbone)?;
        let model = RunModel::build(&spec, device)?;
        let run = Self {
            run_dir,
            checkpoint: ck.dir().to_path_buf(),
            step: ck.checkpoint.step,
            cfg,
            formulation,
            data,
            model,
            device,
            ck,
        };
        run.use_weights("raw")?;
        Ok(run)
    }

    /// The training data's name for the `dataset` column: the shard folder's name for latent
    /// shards, the dataset kind otherwise.
    pub fn dataset_name(&self) -> String {
        use flowscale_train::config::DatasetKind;
        match (self.cfg.data.dataset, &self.cfg.data.path) {
            (DatasetKind::LatentShards, Some(p)) => Path::new(p)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| p.clone()),
            (kind, _) => serde_json::to_value(kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("{kind:?}")),
        }
    }

    /// Decays of the checkpoint's EMAs, ascending.
    pub fn ema_decays(&self) -> Vec<f64> {
        self.ck.ema_decays()
    }

    /// Expands the config's weight names ("raw", "ema", "ema:D", "phema", "phema:S") into labels
    /// `raw`, `ema<D>`, `phema<S>` (power-function EMAs: tracked, or reconstructed post hoc).
    pub fn weight_labels(&self, wanted: &[String]) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for w in wanted {
            let labels: Vec<String> = match w.as_str() {
                "raw" => vec!["raw".into()],
                "ema" => self
                    .ema_decays()
                    .iter()
                    .map(|d| format!("ema{d}"))
                    .collect(),
                "phema" => self
                    .ck
                    .power_ema_stds()
                    .iter()
                    .map(|s| format!("phema{s}"))
                    .collect(),
                other if other.starts_with("phema:") => vec![self.power_ema_label(other)?],
                other => {
                    let d: f64 = other
                        .strip_prefix("ema:")
                        .and_then(|d| d.parse().ok())
                        .ok_or_else(|| invalid("eval.weights", format!("`{other}`")))?;
                    if !self.ema_decays().contains(&d) {
                        return Err(invalid(
                            self.checkpoint.display(),
                            format!("no EMA with decay {d} (has {:?})", self.ema_decays()),
                        ));
                    }
                    vec![format!("ema{d}")]
                }
            };
            for l in labels {
                if !out.contains(&l) {
                    out.push(l);
                }
            }
        }
        Ok(out)
    }

    /// `phema:STD` as the label `phema<STD>`, when the checkpoint has that power-function EMA.
    fn power_ema_label(&self, wanted: &str) -> Result<String> {
        let s: f64 = wanted
            .strip_prefix("phema:")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid("eval.weights", format!("`{wanted}`")))?;
        let stds = self.ck.power_ema_stds();
        if !stds.contains(&s) {
            return Err(invalid(
                self.checkpoint.display(),
                format!("no power-function EMA with std {s} (has {stds:?})"),
            ));
        }
        Ok(format!("phema{s}"))
    }

    /// Loads weights `raw`, `ema<decay>` or `phema<std>` into the model: the raw weights first
    /// (they carry the fixed buffers), then the EMA over them.
    pub fn use_weights(&self, label: &str) -> Result<()> {
        let value = |v: &str| -> Result<f64> {
            v.parse()
                .map_err(|_| invalid("weights", format!("`{label}`")))
        };
        let set = if let Some(s) = label.strip_prefix("phema") {
            WeightSet::PowerEma(value(s)?)
        } else if let Some(d) = label.strip_prefix("ema") {
            WeightSet::Ema(value(d)?)
        } else {
            WeightSet::Raw
        };
        Ok(self.ck.load_weights(&self.model, set)?)
    }
}

/// The checkpoint's backbone config must be the one the run config describes (an edited run
/// config or a checkpoint from another run would otherwise fail later, less clearly).
fn check_backbone(ck: &RunCheckpoint, expected: &MmditConfig) -> Result<()> {
    let saved = ck.backbone_config()?;
    if &saved != expected {
        return Err(invalid(
            ck.dir().join("config.json").display(),
            format!(
                "the checkpoint's backbone differs from the one its run config describes \
                 (saved {saved:?}, run config {expected:?})"
            ),
        ));
    }
    Ok(())
}
