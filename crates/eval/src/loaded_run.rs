//! A run's checkpoint loaded for evaluation: the run config (`config.resolved.toml` of the run
//! directory), the MMDiT and class conditioner rebuilt from it, and the checkpoint's weight sets
//! (raw = `model.safetensors`, EMAs = `ema-<decay>.safetensors`), any of which can be loaded
//! into the model.

use crate::error::{EvalError, Result};
use crate::eval_data::EvalData;
use flowscale_formulations::Formulation;
use flowscale_models::{Mmdit, MmditConfig};
use flowscale_train::checkpoint::{CheckpointStore, LoadedCheckpoint};
use flowscale_train::conditioning::{ClassEmbedding, Conditioning, ConditioningProvider};
use flowscale_train::config::{Precision, RunConfig};
use flowscale_train::export::{resolve_checkpoint, StepChoice};
use flowscale_train::state::TrainState;
use flowscale_train::trainer::CONDITIONER_PREFIX;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

pub struct LoadedRun {
    pub run_dir: PathBuf,
    pub checkpoint: PathBuf,
    pub step: u64,
    pub cfg: RunConfig,
    pub formulation: Formulation,
    pub data: EvalData,
    pub device: Device,
    model_vs: VarStore,
    model: Mmdit,
    cond_vs: VarStore,
    conditioner: ClassEmbedding,
    groups: HashMap<String, HashMap<String, Tensor>>,
}

fn invalid(what: impl std::fmt::Display, e: impl std::fmt::Display) -> EvalError {
    EvalError::Invalid(format!("{what}: {e}"))
}

impl LoadedRun {
    /// Loads `source` (a run directory or one of its checkpoint folders) at `step`.
    pub fn load(source: &Path, step: StepChoice, device: Device) -> Result<Self> {
        let checkpoint = resolve_checkpoint(source, step).map_err(|e| invalid("checkpoint", e))?;
        let run_dir = checkpoint
            .parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .ok_or_else(|| invalid(checkpoint.display(), "not inside <run>/checkpoints/"))?;
        let cfg_path = run_dir.join("config.resolved.toml");
        let cfg: RunConfig =
            flowscale_train::config::load(&cfg_path, &[]).map_err(|e| invalid("run config", e))?;
        let ck: LoadedCheckpoint<TrainState> =
            CheckpointStore::load(&checkpoint).map_err(|e| invalid(checkpoint.display(), e))?;
        let formulation = Formulation::parse(&cfg.formulation.name)
            .map_err(|e| invalid(format!("{}: formulation.name", cfg_path.display()), e))?;
        let data = EvalData::load(&cfg, device)?;
        let mcfg_path = checkpoint.join("config.json");
        let text = std::fs::read_to_string(&mcfg_path).map_err(|e| EvalError::io(&mcfg_path, e))?;
        let mcfg = MmditConfig::from_json(&text).map_err(|e| invalid(mcfg_path.display(), e))?;
        let model_vs = VarStore::new(device);
        let model = Mmdit::new(&model_vs.root(), &mcfg).map_err(|e| invalid("model", e))?;
        let cond_vs = VarStore::new(device);
        let c = &cfg.conditioning;
        let conditioner = ClassEmbedding::new(
            &cond_vs.root(),
            data.classes(),
            i64::from(c.context_tokens),
            i64::from(c.context_dim),
            i64::from(c.pooled_dim),
        )
        .map_err(|e| invalid("conditioner", e))?;
        let mut run = Self {
            run_dir,
            checkpoint,
            step: ck.step,
            cfg,
            formulation,
            data,
            device,
            model_vs,
            model,
            cond_vs,
            conditioner,
            groups: ck.groups,
        };
        run.load_group("model")?;
        Ok(run)
    }

    /// Decays of the checkpoint's EMAs, ascending.
    pub fn ema_decays(&self) -> Vec<f64> {
        let mut d: Vec<f64> = self
            .groups
            .keys()
            .filter_map(|k| k.strip_prefix("ema-").and_then(|d| d.parse().ok()))
            .collect();
        d.sort_by(f64::total_cmp);
        d
    }

    /// Expands the config's weight names ("raw", "ema", "ema:D") into labels `raw`, `ema<D>`.
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

    /// Loads weights `raw` or `ema<decay>` into the model and conditioner.
    pub fn use_weights(&mut self, label: &str) -> Result<()> {
        self.load_group("model")?;
        if let Some(d) = label.strip_prefix("ema") {
            self.load_group(&format!("ema-{d}"))?;
        }
        Ok(())
    }

    fn load_group(&mut self, group: &str) -> Result<()> {
        let tensors = self
            .groups
            .get(group)
            .ok_or_else(|| invalid(self.checkpoint.display(), format!("no {group}.safetensors")))?;
        let model_vars = self.model_vs.variables();
        let cond_vars = self.cond_vs.variables();
        let _guard = tch::no_grad_guard();
        let mut loaded = 0;
        for (name, value) in tensors {
            let target = match name.strip_prefix(CONDITIONER_PREFIX) {
                Some(rest) => cond_vars.get(rest),
                None => model_vars.get(name),
            };
            let mut target = target
                .ok_or_else(|| {
                    invalid(
                        format!("{}/{group}.safetensors", self.checkpoint.display()),
                        format!("tensor `{name}` is not a parameter of the run's model"),
                    )
                })?
                .shallow_clone();
            if target.size() != value.size() {
                return Err(EvalError::shape(
                    format!("{group}.safetensors `{name}`"),
                    format!("{:?}", target.size()),
                    &value.size(),
                ));
            }
            target.f_copy_(value)?;
            loaded += 1;
        }
        if group == "model" && loaded != model_vars.len() + cond_vars.len() {
            return Err(invalid(
                format!("{}/model.safetensors", self.checkpoint.display()),
                format!(
                    "{loaded} tensors, the model and conditioner have {}",
                    model_vars.len() + cond_vars.len()
                ),
            ));
        }
        Ok(())
    }

    /// Conditioning of labels (nothing dropped).
    pub fn encode(&self, labels: &Tensor) -> Result<Conditioning> {
        let keep = vec![Tensor::f_ones(
            [labels.size()[0]],
            (Kind::Float, self.device),
        )?];
        self.conditioner
            .encode(labels, &keep)
            .map_err(|e| invalid("conditioner", e))
    }

    /// The backbone as the trainer runs it (bf16 autocast on CUDA when the run trained in bf16).
    pub fn forward(
        &self,
        x: &Tensor,
        t: &Tensor,
        cond: &Conditioning,
    ) -> flowscale_train::Result<Tensor> {
        let run = || {
            self.model
                .forward(x, t, &cond.context, &cond.pooled)
                .map_err(|e| flowscale_train::TrainError::Invalid(format!("model forward: {e}")))
        };
        let out = if self.cfg.train.precision == Precision::Bf16 && self.device.is_cuda() {
            flowscale_torch_ext::autocast::with_autocast(self.device, Kind::BFloat16, run)
                .map_err(|e| flowscale_train::TrainError::Invalid(format!("autocast: {e}")))??
        } else {
            run()?
        };
        Ok(out.f_to_kind(Kind::Float)?)
    }
}
