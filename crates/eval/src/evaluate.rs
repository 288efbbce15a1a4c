//! `flowscale eval`: one checkpoint, every requested weight set, the validation loss (the
//! trainer's protocol and fixed noise) and, per sampler setting, N samples from fixed labels and
//! noise scored by FID (Inception-v3 or CLIP image features), CLIP score (when the config names
//! a CLIP model) and classifier accuracy. Pixel-space runs decode as the identity, latent-shard
//! runs through their autoencoder (`flowscale_train::run::RunData`).
//!
//! Fixed inputs: sample `i` has the conditioning of [`crate::conditions`] (label `i mod
//! classes`, or the caption of a val sample or of a COCO image for text runs) and noise row `i`
//! of one `[N, C, H, W]` normal draw seeded by `eval.seed` on the CPU, so every weight set,
//! setting and device sees the same starting points. Samples are quantised to u8 as images are
//! saved, then scored. The CLIP score pairs sample `i` with its prompt (class runs: the caption
//! of its class, `clip.caption`, default "a photo of a <class name>"). Every row carries the
//! training data's name in its `dataset` column, so `flowscale rank` ranks per dataset.

use crate::classifier::{self, Classifier, ClassifierInfo, TrainSpec};
use crate::clip_metric::ClipMetric;
use crate::conditions::{eval_conditions, PromptSource};
use crate::config::EvalConfig;
use crate::error::{EvalError, Result};
use crate::feature_net::FeatureNet;
use crate::inception::FidInception;
use crate::loaded_run::LoadedRun;
use crate::protocol;
use crate::reference::{folder_reference_stats, tensor_reference_stats, ReferenceStats};
use crate::reference_root::prepared_reference;
use crate::results::{to_csv, write_text, ResultRow};
use flowscale_data::{to_model_pixels, to_u8_pixels};
use flowscale_formulations::SamplerMethod;
use flowscale_train::cond_input::CondInput;
use flowscale_train::export::StepChoice;
use flowscale_train::image_grid::save_grid;
use flowscale_train::sampling::{generate, SamplerSetting};
use flowscale_train::validation::{level_grid, validation_loss, ValidationSet};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct EvalRequest {
    pub source: PathBuf,
    pub step: StepChoice,
    pub config: EvalConfig,
}

/// Where the results went.
#[derive(Debug)]
pub struct EvalOutcome {
    pub out_dir: PathBuf,
    pub rows: Vec<ResultRow>,
    pub grids: Vec<PathBuf>,
}

/// The device of an `eval.device`-style choice: "cpu", "cuda" or anything else for CUDA
/// when available.
pub fn device(choice: &str) -> Result<Device> {
    match choice {
        "cpu" => Ok(Device::Cpu),
        "cuda" if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
        "cuda" => Err(EvalError::Invalid(
            "eval.device = \"cuda\" but no CUDA device is available".into(),
        )),
        _ => Ok(Device::cuda_if_available()),
    }
}

/// Where an evaluation of `run_dir`'s checkpoint `step` writes when `eval.out_dir` is empty.
pub fn default_out_dir(run_dir: &Path, step: u64) -> PathBuf {
    run_dir.join("eval").join(format!("step-{step:09}"))
}

/// A reconstructed post-hoc EMA checkpoint (`<run>/posthoc/reconstructed/std-S/step-N`) is
/// evaluated into `<run>/eval/posthoc-std-S/step-N`, apart from the run checkpoint of the same
/// step.
fn reconstructed_out_dir(run: &LoadedRun) -> Option<PathBuf> {
    flowscale_train::posthoc::reconstructed::run_dir_of_reconstructed(&run.checkpoint)?;
    let store = run.checkpoint.parent()?.file_name()?.to_str()?;
    Some(posthoc_eval_dir(&run.run_dir, store, run.step))
}

/// Where the evaluation of the reconstructed checkpoint of store `store` (`std-<S>`) at `step`
/// goes: `<run>/eval/posthoc-std-<S>/step-N`.
fn posthoc_eval_dir(run_dir: &Path, store: &str, step: u64) -> PathBuf {
    run_dir
        .join("eval")
        .join(format!("posthoc-{store}"))
        .join(format!("step-{step:09}"))
}

/// The evaluation folder of run `run_dir`'s post-hoc EMA of relative std `std` reconstructed at
/// `step` (what `flowscale eval` on that reconstructed checkpoint writes).
pub fn reconstructed_eval_dir(run_dir: &Path, std: f64, step: u64) -> PathBuf {
    let store = flowscale_train::posthoc::reconstructed::reconstructed_store_dir(run_dir, std);
    let name = store
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    posthoc_eval_dir(run_dir, &name, step)
}

/// Runs the evaluation; `log` receives one line per finished measurement.
pub fn evaluate(req: &EvalRequest, log: &mut dyn FnMut(&str)) -> Result<EvalOutcome> {
    let c = &req.config;
    let dev = device(&c.eval.device)?;
    let run = LoadedRun::load(&req.source, req.step, dev, &c.prompts)?;
    let labels_w = run.weight_labels(&c.eval.weights)?;
    let shift = if c.sampling.shift > 0.0 {
        c.sampling.shift
    } else {
        run.cfg
            .shift_alpha()
            .map_err(flowscale_train::TrainError::from)?
    };
    // A native-frame setting the formulation's schedule refuses (the LDM schedule takes no
    // shift) is an error now, not after the validation loss, FID reference and other settings.
    for spec in &c.sampling.settings {
        spec.frame
            .schedule(run.formulation, spec.steps, shift)
            .map_err(|e| EvalError::Invalid(format!("sampler setting {}: {e}", spec.label())))?;
    }
    let out_dir = if c.eval.out_dir.is_empty() {
        reconstructed_out_dir(&run).unwrap_or_else(|| default_out_dir(&run.run_dir, run.step))
    } else {
        PathBuf::from(&c.eval.out_dir)
    };
    std::fs::create_dir_all(&out_dir).map_err(|e| EvalError::io(&out_dir, e))?;
    let base = ResultRow {
        run: run.cfg.run.name.clone(),
        dataset: if c.eval.dataset.is_empty() {
            run.dataset_name()
        } else {
            c.eval.dataset.clone()
        },
        formulation: run.cfg.formulation.name.clone(),
        depth: run.cfg.model.depth,
        step: run.step,
        weights: String::new(),
        setting: String::new(),
        metric: String::new(),
        value: 0.0,
        n: 0,
        feature_network: String::new(),
        feature_weights_sha256: String::new(),
        reference_stats_sha256: String::new(),
        resize_mode: String::new(),
        shift: None,
    };
    let res = run.data.resolution();

    // Fixed inputs.
    let n = c.sampling.n as i64;
    let conditions = eval_conditions(&run, c, n)?;
    log(&format!("prompts: {}", conditions.description));
    // What differs from the paper's protocol, said before any number is produced.
    let substituted = protocol::substitutions(c, conditions.source);
    for s in &substituted {
        log(&format!("protocol substitution: {s}"));
    }
    tch::manual_seed(c.eval.seed as i64);
    let [ch, h, w] = run.data.model_shape();
    let noise = Tensor::f_randn([n, ch, h, w], (Kind::Float, Device::Cpu))?;

    let clip = if c.clip.model.is_empty() {
        None
    } else {
        let m = ClipMetric::load(Path::new(&c.clip.model), Path::new(&c.clip.tokenizer), dev)?;
        log(&format!(
            "CLIP model {} (files {})",
            m.dir.display(),
            &m.sha256[..12]
        ));
        Some(m)
    };
    let captions: Option<&Vec<String>> = conditions.captions.as_ref();
    if clip.is_some() && captions.is_none() {
        return Err(EvalError::Invalid(
            "CLIP score needs the prompts' text, but the val split stores text embeddings only \
             (precompute keeps captions when the source has them)"
                .into(),
        ));
    }
    let inception = if c.fid.enabled && c.fid.feature_network == "inception" {
        Some(FidInception::load(Path::new(&c.fid.weights), dev)?)
    } else {
        None
    };
    let fid_net: Option<&dyn FeatureNet> = match (&inception, &clip) {
        (Some(net), _) => Some(net),
        (None, Some(m)) if c.fid.enabled => Some(m),
        _ if c.fid.enabled => {
            return Err(EvalError::Invalid(
                "fid.feature_network = \"clip\" needs clip.model".into(),
            ))
        }
        _ => None,
    };
    let fid = if let Some(net) = fid_net {
        let reference = reference_stats(&run, net, c, conditions.reference.as_ref())?;
        log(&format!(
            "FID reference: {} ({} images, stats {})",
            reference.provenance.source,
            reference.provenance.n_images,
            &reference.provenance.stats_sha256[..12]
        ));
        // The reference side of every setting's FID (mean, trace, covariance root), once.
        let prepared = prepared_reference(&reference)?;
        Some((net, reference, prepared))
    } else {
        None
    };
    // Class adherence needs the class of each prompt: the labels of class runs, or of the
    // val samples whose captions are the prompts.
    let classifier = match (&conditions.labels, c.classifier.enabled) {
        (Some(_), true) => Some(classifier_for(&run, c, dev, log)?),
        (None, true) if conditions.source != PromptSource::Classes => {
            log("no class labels for the prompts: class adherence is not scored");
            None
        }
        _ => None,
    };

    let mut rows = Vec::new();
    let mut grids = Vec::new();
    // The validation inputs and noise are the same for every weight set: read them once.
    let validation = if c.validation.enabled {
        Some(validation_set(&run, c)?)
    } else {
        None
    };
    for wl in &labels_w {
        run.use_weights(wl)?;
        if let Some(set) = &validation {
            rows.extend(validation_rows(&run, c, set, wl, &base)?);
            log(&format!(
                "{wl}: validation loss {:.5}",
                rows.last().map_or(0.0, |r: &ResultRow| r.value)
            ));
        }
        for spec in &c.sampling.settings {
            let setting = SamplerSetting {
                steps: spec.steps,
                cfg: spec.cfg,
                shift,
                method: SamplerMethod::Euler,
                frame: spec.frame,
            };
            let start = Instant::now();
            let generated = sample_all(
                &run,
                setting,
                &noise,
                &conditions.cond,
                c.sampling.batch_size as i64,
            )?;
            // Latent runs: through the run's autoencoder.
            let images = run.data.to_pixels(&generated)?;
            let seconds = start.elapsed().as_secs_f64();
            let u8s = to_u8_pixels(&images)?;
            let grid_n = (c.sampling.grid_rows * c.sampling.grid_cols) as i64;
            let grid = out_dir.join(format!("samples_{wl}_{}.png", spec.label()));
            let shown = to_model_pixels(&u8s.f_narrow(0, 0, grid_n.min(n))?, (res, res))?;
            save_grid(&shown, i64::from(c.sampling.grid_cols), &grid)?;
            grids.push(grid);
            let row = |metric: &str, value: f64| ResultRow {
                weights: wl.clone(),
                setting: spec.label(),
                metric: metric.into(),
                value,
                n: n as usize,
                shift: Some(shift),
                ..base.clone()
            };
            rows.push(row("sampling_seconds", seconds));
            let mut line = format!("{wl} {}: {seconds:.1} s", spec.label());
            if let Some((net, reference, prepared)) = &fid {
                let feats = net.features_u8(&u8s, c.fid.batch_size as usize)?;
                let value = prepared.distance_to_features(&feats)?;
                rows.push(ResultRow {
                    feature_network: net.name(),
                    feature_weights_sha256: net.weights_sha256(),
                    reference_stats_sha256: reference.provenance.stats_sha256.clone(),
                    resize_mode: net.resize_mode(),
                    ..row("fid", value)
                });
                line.push_str(&format!(", FID {value:.2}"));
            }
            if let (Some(m), Some(captions)) = (&clip, captions) {
                let caps: Vec<&str> = captions.iter().map(String::as_str).collect();
                let s = m.score(&u8s, &caps, c.clip.batch_size as usize)?;
                for (metric, value) in [(CLIP_SCORE_RAW, s.raw), (CLIP_SCORE_X100, s.x100)] {
                    rows.push(ResultRow {
                        feature_network: m.name(),
                        feature_weights_sha256: m.weights_sha256(),
                        resize_mode: m.resize_mode(),
                        ..row(metric, value)
                    });
                }
                line.push_str(&format!(
                    ", CLIP score {:.4} (x100 clipped {:.2})",
                    s.raw, s.x100
                ));
            }
            if let (Some(cl), Some(labels)) = (&classifier, &conditions.labels) {
                let x = to_model_pixels(&u8s, (res, res))?;
                let predicted = cl.predict(&x, 500)?;
                let (acc, chance) = adherence(&predicted, labels)?;
                let row = |metric: &str, value: f64| ResultRow {
                    feature_network: classifier::NAME.into(),
                    feature_weights_sha256: cl.info.sha256.clone(),
                    ..row(metric, value)
                };
                if conditions.source == PromptSource::Classes {
                    rows.push(row("class_accuracy", acc));
                    line.push_str(&format!(", class accuracy {acc:.3}"));
                } else {
                    rows.push(row("prompt_class_accuracy", acc));
                    rows.push(row("prompt_class_chance", chance));
                    line.push_str(&format!(
                        ", prompt class accuracy {acc:.3} (chance {chance:.3})"
                    ));
                }
            }
            log(&line);
        }
    }
    let doc = json!({
        "run_dir": run.run_dir.display().to_string(),
        "checkpoint": run.checkpoint.display().to_string(),
        "step": run.step,
        "device": format!("{dev:?}"),
        "config": c,
        "prompts": conditions.description,
        "fid_reference": fid.as_ref().map(|(_, r, _)| &r.provenance),
        "clip_model": clip.as_ref().map(|m| json!({
            "dir": m.dir.display().to_string(),
            "files_sha256": m.sha256,
            "feature_network": m.name(),
            "preprocessing": m.resize_mode(),
        })),
        "classifier": classifier.as_ref().map(|cl| &cl.info),
        protocol::RESULTS_KEY: substituted,
        "flowscale_version": env!("CARGO_PKG_VERSION"),
        "rows": rows,
    });
    write_text(
        &out_dir.join("results.json"),
        &(serde_json::to_string_pretty(&doc).expect("results serialise") + "\n"),
    )?;
    write_text(&out_dir.join("results.csv"), &to_csv(&rows))?;
    Ok(EvalOutcome {
        out_dir,
        rows,
        grids,
    })
}

/// The raw CLIP score's metric name: mean cosine of L2-normalised image and text embeddings.
pub const CLIP_SCORE_RAW: &str = "clip_score";
/// torchmetrics' scale: mean of `max(100 cos, 0)`.
pub const CLIP_SCORE_X100: &str = "clip_score_x100";

/// Share of samples whose predicted class is their prompt's, and the share expected by chance
/// when predictions ignore the prompts (`sum_k p_k q_k` over the prompt classes' frequencies
/// `p` and the predicted classes' `q`).
fn adherence(predicted: &Tensor, labels: &Tensor) -> Result<(f64, f64)> {
    let p: Vec<i64> = Vec::try_from(predicted)?;
    let l: Vec<i64> = Vec::try_from(labels)?;
    let n = l.len().max(1) as f64;
    let hits = p.iter().zip(&l).filter(|(a, b)| a == b).count() as f64;
    let mut freq_p = std::collections::HashMap::<i64, f64>::new();
    let mut freq_l = std::collections::HashMap::<i64, f64>::new();
    for (a, b) in p.iter().zip(&l) {
        *freq_p.entry(*a).or_default() += 1.0 / n;
        *freq_l.entry(*b).or_default() += 1.0 / n;
    }
    let chance = freq_l
        .iter()
        .map(|(k, v)| v * freq_p.get(k).copied().unwrap_or(0.0))
        .sum();
    Ok((hits / n, chance))
}

fn reference_stats(
    run: &LoadedRun,
    net: &dyn FeatureNet,
    c: &EvalConfig,
    prompt_images: Option<&(Tensor, String)>,
) -> Result<ReferenceStats> {
    let cache = Path::new(&c.fid.cache_dir);
    let batch = c.fid.batch_size as usize;
    // A COCO evaluation compares with the images its prompts describe.
    if let (Some((u8s, source)), "held-out") = (prompt_images, c.fid.reference.as_str()) {
        return tensor_reference_stats(net, u8s, source, cache, batch);
    }
    if c.fid.reference != "held-out" {
        return folder_reference_stats(net, Path::new(&c.fid.reference), cache, batch);
    }
    let (u8s, source) = run
        .data
        .reference_u8(c.fid.reference_n as usize, run.device)?;
    let source = format!("{:?} {source}", run.cfg.data.dataset);
    tensor_reference_stats(net, &u8s, &source, cache, batch)
}

fn classifier_for(
    run: &LoadedRun,
    c: &EvalConfig,
    dev: Device,
    log: &mut dyn FnMut(&str),
) -> Result<Classifier> {
    let path = Path::new(&c.classifier.path);
    let res = run.data.resolution();
    let cl = if path.is_file() {
        Classifier::load(path, dev)?
    } else if let Some((train, held_out)) = run
        .data
        .classifier_images(c.classifier.max_images as usize, run.device)?
    {
        log(&format!(
            "training the class-accuracy classifier ({} steps) into {}",
            c.classifier.train_steps,
            path.display()
        ));
        let train_x = to_model_pixels(&train.images, (res, res))?;
        let held_x = to_model_pixels(&held_out.images, (res, res))?;
        let spec = TrainSpec {
            steps: c.classifier.train_steps,
            batch_size: c.classifier.batch_size,
            lr: c.classifier.lr,
            seed: 0,
        };
        Classifier::train(
            (&train_x, &train.labels),
            (&held_x, &held_out.labels),
            run.data.classes(),
            spec,
            path,
            dev,
        )?
    } else {
        return Err(EvalError::Invalid(format!(
            "classifier.path {}: not found, and the run's data has no class labels to fit a \
             classifier on; give a classifier trained on the dataset's images (or set \
             classifier.enabled = false)",
            path.display()
        )));
    };
    check_classifier(&cl.info, run, path)?;
    log(&format!(
        "classifier {}: held-out accuracy {:.4}",
        path.display(),
        cl.info.held_out_accuracy
    ));
    Ok(cl)
}

fn check_classifier(info: &ClassifierInfo, run: &LoadedRun, path: &Path) -> Result<()> {
    let want = (
        run.data.classes(),
        run.data.image_channels(),
        run.data.resolution(),
    );
    if (info.classes, info.channels, info.resolution) != want {
        return Err(EvalError::Invalid(format!(
            "{}: classifier for {} classes, {} channels at {}px; the run has {:?}",
            path.display(),
            info.classes,
            info.channels,
            info.resolution,
            want
        )));
    }
    Ok(())
}

/// The trainer's fixed validation set: the held-out inputs and the noise of its seed.
fn validation_set(run: &LoadedRun, c: &EvalConfig) -> Result<ValidationSet> {
    let samples = if c.validation.samples > 0 {
        c.validation.samples
    } else {
        run.cfg.validation.samples
    };
    let (vx, vl) = run.data.held_out(samples as usize, run.device)?;
    // The trainer's seed for the fixed validation noise.
    Ok(ValidationSet::new(vx, vl, run.cfg.run.seed ^ 0x7a11_da7e)?)
}

fn validation_rows(
    run: &LoadedRun,
    c: &EvalConfig,
    set: &ValidationSet,
    wl: &str,
    base: &ResultRow,
) -> Result<Vec<ResultRow>> {
    let v = &run.cfg.validation;
    let levels = if c.validation.levels > 0 {
        c.validation.levels
    } else {
        v.levels
    };
    let result = validation_loss(
        run.formulation,
        set,
        &level_grid(levels, v.grid),
        v.batch_size as usize,
        |x, t, labels| {
            let cond = run.model.encode_all(labels)?;
            run.model.forward(x, t, &cond)
        },
    )?;
    let row = |metric: String, value: f64| ResultRow {
        weights: wl.to_string(),
        setting: "validation".into(),
        metric,
        value,
        n: set.len(),
        ..base.clone()
    };
    let mut rows: Vec<ResultRow> = result
        .levels
        .iter()
        .map(|(t, l)| row(format!("val_loss_t{t:.3}"), *l))
        .collect();
    rows.push(row("val_loss".into(), result.mean));
    Ok(rows)
}

fn sample_all(
    run: &LoadedRun,
    setting: SamplerSetting,
    noise: &Tensor,
    cond: &CondInput,
    batch: i64,
) -> Result<Tensor> {
    let n = noise.size()[0];
    let mut out = Vec::new();
    let mut start = 0;
    while start < n {
        let len = batch.max(1).min(n - start);
        let z = noise.f_narrow(0, start, len)?.f_to_device(run.device)?;
        let part = cond.narrow(start, len)?.to_device(run.device)?;
        let cond = run.model.encode_all(&part)?;
        let x = generate(run.formulation, setting, &z, &cond, |x, t, c| {
            run.model.forward(x, t, c)
        })?;
        out.push(x.f_to_device(Device::Cpu)?);
        start += len;
    }
    Ok(Tensor::f_cat(&out, 0)?)
}
