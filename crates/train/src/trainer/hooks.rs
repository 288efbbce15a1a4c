//! The loop's hooks: logging, validation, sample grids, checkpoints.

use super::{Running, Trainer};
use crate::cond_input::CondInput;
use crate::config::NonFinitePolicy;
use crate::distributed::shard;
use crate::error::{Result, TrainError};
use crate::image_grid::save_grid;
use crate::posthoc::power_ema_group_name;
use crate::run::ema_group_name;
use crate::sampling::{generate, setting_label, SamplerSetting};
use crate::validation::{from_level_sums, level_grid, level_sums};
use flowscale_formulations::SamplerMethod;
use serde_json::{json, Map, Value};
use tch::Tensor;

/// Which weights an evaluation uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Weights {
    Raw,
    /// Index into the EMA decays.
    Ema(usize),
}

impl Trainer {
    /// Reads the device-side sums (the loop's one host synchronisation), writes scalars and
    /// returns the progress message.
    pub(super) fn log_training(&mut self) -> Result<String> {
        if let Some(d) = &self.dp {
            // Loss and sample counts are global already; the per-bin sums are per rank.
            d.sum(&self.running.bin_sum)?;
            d.sum(&self.running.bin_count)?;
        }
        let r = &self.running;
        let step = self.state.step;
        let steps = r.steps.max(1) as f64;
        let loss = r.loss_sum.double_value(&[]) / r.samples.max(1) as f64;
        let grad_norm = r.grad_norm_sum.double_value(&[]) / steps;
        let nonfinite = r.nonfinite.double_value(&[]) as u64;
        let bin_sum: Vec<f64> = Vec::try_from(&r.bin_sum)?;
        let bin_count: Vec<f64> = Vec::try_from(&r.bin_count)?;
        let secs = r.since.elapsed().as_secs_f64().max(1e-9);
        let (it_s, img_s) = (r.steps as f64 / secs, r.samples as f64 / secs);
        if nonfinite > 0 && self.cfg.logging.nonfinite == NonFinitePolicy::Stop {
            return Err(self.nonfinite_stop(nonfinite));
        }
        let bins = bin_sum.len();
        let drop_rates: Vec<(String, f64)> = if r.cond_samples > 0 {
            let n = r.cond_samples as f64;
            self.model
                .conditioning_sources()
                .into_iter()
                .zip(&r.cond_dropped)
                .map(|(name, d)| (format!("cond/drop_{name}"), *d as f64 / n))
                .chain(std::iter::once((
                    "cond/drop_all".to_owned(),
                    r.cond_all_dropped as f64 / n,
                )))
                .collect()
        } else {
            Vec::new()
        };
        // Training FLOP/s of all ranks together (the FLOPs of the global batches since the last
        // log, each batch at its own latent size), and MFU.
        let world = self.rank_world().1;
        let flops_per_s = r.flops / secs;
        let mfu = self
            .peak_flops
            .map(|peak| crate::peak_flops::mfu(flops_per_s, world, peak));
        let mut message = format!("loss {loss:.4} | {it_s:.2} it/s | {img_s:.0} img/s");
        if let Some(m) = mfu {
            message.push_str(&format!(" | MFU {:.1}%", 100.0 * m));
        }
        self.running = Running::new(bins as i64, self.device)?;
        let (Some(tb), Some(metrics)) = (self.tb.as_mut(), self.metrics.as_mut()) else {
            return Ok(message);
        };
        let mut fields = Map::new();
        let mut scalar = |tag: &str, v: f64, tb: &mut crate::tensorboard::EventWriter| {
            fields.insert(tag.replace('/', "_"), json!(v));
            tb.scalar(tag, v, step as i64)
        };
        scalar("train/loss", loss, tb)?;
        scalar("train/lr", self.state.lr, tb)?;
        scalar("train/grad_norm", grad_norm, tb)?;
        scalar("perf/steps_per_s", it_s, tb)?;
        scalar("perf/images_per_s", img_s, tb)?;
        scalar(
            "perf/tflops_per_device",
            flops_per_s / world as f64 / 1e12,
            tb,
        )?;
        if let Some(m) = mfu {
            scalar("perf/mfu", m, tb)?;
        }
        scalar("progress/images_seen", self.state.images_seen as f64, tb)?;
        scalar("progress/train_flops", self.state.train_flops, tb)?;
        if self.state.skipped_steps > 0 {
            scalar("train/skipped_steps", self.state.skipped_steps as f64, tb)?;
        }
        // Realised dropout rates of this rank since the last log (the configured ones are
        // probabilities; these are what the model saw).
        for (tag, rate) in &drop_rates {
            scalar(tag, *rate, tb)?;
        }
        for (i, (s, c)) in bin_sum.iter().zip(&bin_count).enumerate() {
            if *c > 0.0 {
                let tag = format!(
                    "train/loss_t{:.2}-{:.2}",
                    i as f64 / bins as f64,
                    (i + 1) as f64 / bins as f64
                );
                scalar(&tag, s / c, tb)?;
            }
        }
        metrics.write(step, "train", fields)?;
        tb.flush()?;
        Ok(message)
    }

    /// Saves the diagnostic of a non-finite loss and returns the error that stops the run.
    fn nonfinite_stop(&mut self, count: u64) -> TrainError {
        let path = self
            .dir
            .root
            .join(format!("nonfinite-step-{:09}.json", self.state.step));
        let diag = json!({
            "step": self.state.step,
            "nonfinite_steps_since_last_log": count,
            "lr": self.state.lr,
            "rng_state": self.rng.state(),
            "last_checkpoint": self.store.latest().ok().flatten().map(|(s, _)| s),
        });
        if self.is_main() {
            let _ = flowscale_core::write_atomic(&path, diag.to_string().as_bytes());
        }
        TrainError::Invalid(format!(
            "the training loss was not finite in {count} step(s) before step {}; stopped \
             (diagnostic: {}). Resume from the last checkpoint with a lower optim.lr, or set \
             logging.nonfinite = \"skip\"",
            self.state.step,
            path.display()
        ))
    }

    /// Runs `f` with the chosen weights loaded into the model, restoring the raw weights after.
    fn with_weights<T>(&mut self, w: Weights, f: impl FnOnce(&Self) -> Result<T>) -> Result<T> {
        match w {
            Weights::Raw => f(self),
            Weights::Ema(k) => {
                let raw = snapshot(&self.params)?;
                copy_into(&self.params, self.ema.averages(k))?;
                let out = f(self);
                copy_into(&self.params, &raw)?;
                out
            }
        }
    }

    fn weight_sets(&self) -> Vec<(String, Weights)> {
        let mut out = vec![("raw".to_owned(), Weights::Raw)];
        for (k, d) in self.ema.decays().iter().enumerate() {
            out.push((format!("ema{d}"), Weights::Ema(k)));
        }
        out
    }

    /// Validation loss of the raw weights and every EMA.
    /// Returns whether this validation set a new best validation loss (the caller then writes
    /// a checkpoint of this step, so the selected step always exists on disk).
    pub(super) fn run_validation(&mut self) -> Result<bool> {
        let step = self.state.step;
        let levels = level_grid(self.cfg.validation.levels, self.cfg.validation.grid);
        let batch = self.cfg.validation.batch_size as usize;
        let mut best_candidate = None;
        for (label, w) in self.weight_sets() {
            let result = self.with_weights(w, |t| {
                // Each rank evaluates its share of the fixed set; the sums add up to the
                // full set's, so the number does not depend on the world size.
                let (rank, world) = t.rank_world();
                let n = t.validation.len();
                let sums = level_sums(
                    t.formulation,
                    &t.validation,
                    &levels,
                    batch,
                    shard(n, rank, world),
                    |x, time, input| {
                        let cond = t.model.encode_all(input)?;
                        t.model.forward(x, time, &cond)
                    },
                )?;
                let sums = match &t.dp {
                    Some(d) => {
                        let s: Vec<f64> = sums.iter().map(|(_, s)| *s).collect();
                        let total = Tensor::f_from_slice(&s)?;
                        d.sum(&total)?;
                        let total: Vec<f64> = Vec::try_from(&total)?;
                        sums.iter().zip(total).map(|((t, _), s)| (*t, s)).collect()
                    }
                    None => sums,
                };
                Ok(from_level_sums(&sums, n))
            })?;
            if let (Some(tb), Some(metrics)) = (self.tb.as_mut(), self.metrics.as_mut()) {
                let mut fields = Map::new();
                fields.insert("weights".into(), json!(label));
                fields.insert("val_loss".into(), json!(result.mean));
                tb.scalar(&format!("val/{label}/loss"), result.mean, step as i64)?;
                let per: Vec<Value> = result
                    .levels
                    .iter()
                    .map(|(t, l)| json!({"t": t, "loss": l}))
                    .collect();
                for (t, l) in &result.levels {
                    tb.scalar(&format!("val/{label}/loss_t{t:.3}"), *l, step as i64)?;
                }
                fields.insert("levels".into(), Value::Array(per));
                metrics.write(step, "validation", fields)?;
            }
            // Checkpoint selection uses the first EMA when there is one (the paper), else raw.
            let selects = match w {
                Weights::Ema(0) => true,
                Weights::Raw => self.ema.decays().is_empty(),
                _ => false,
            };
            if selects {
                best_candidate = Some(result.mean);
            }
        }
        // A non-finite loss (a diverged run) never becomes the best checkpoint.
        let mut improved = false;
        if let Some(v) = best_candidate.filter(|v| v.is_finite()) {
            if self.state.best_val_loss.is_none_or(|(b, _)| v < b) {
                self.state.best_val_loss = Some((v, step));
                improved = true;
            }
        }
        if let Some(tb) = &mut self.tb {
            tb.flush()?;
        }
        Ok(improved)
    }

    /// Sample grids for every (steps, cfg) setting, from the raw weights and every EMA.
    pub(super) fn run_samples(&mut self) -> Result<()> {
        if !self.is_main() {
            // Only rank 0 draws and writes the grids.
            return Ok(());
        }
        let step = self.state.step;
        let s = self.cfg.samples.clone();
        let shift = match s.shift {
            Some(s) => s,
            None => self.cfg.shift_alpha()?,
        };
        let ncol = i64::from(s.per_class);
        for (label, w) in self.weight_sets() {
            for &steps in &s.steps {
                for &cfg_scale in &s.cfg {
                    let setting = SamplerSetting {
                        steps: steps as usize,
                        cfg: cfg_scale,
                        shift,
                        method: SamplerMethod::Euler,
                        frame: s.frame,
                    };
                    let sampled = self.with_weights(w, |t| {
                        let cond = t
                            .model
                            .encode_without(&t.grid_cond, &t.cfg.samples.drop_sources)?;
                        generate(
                            t.formulation,
                            setting,
                            &t.grid_noise,
                            &cond,
                            |x, time, c| t.model.forward(x, time, c),
                        )
                    });
                    let images = match sampled {
                        // Weights that sample NaN (a run kept going past non-finite losses
                        // with `logging.nonfinite = "skip"`): no grid of NaN, and the run goes
                        // on as it was told to.
                        Err(TrainError::NonFinite(why)) => {
                            eprintln!(
                                "warning: step {step}: no sample grid for {label} weights, \
                                 {steps} steps, cfg {cfg_scale}: {why}"
                            );
                            continue;
                        }
                        other => other?,
                    };
                    // Latent-space runs: the run's autoencoder turns latents into pixels.
                    let images = self.data.to_pixels(&images)?;
                    let setting_name = setting_label(setting.steps, cfg_scale, s.frame);
                    let name = format!("step-{step:09}_{label}_{setting_name}.png");
                    let path = self.dir.samples().join(&name);
                    let (png, h, wd, c) = save_grid(&images, ncol, &path)?;
                    if let CondInput::Text(_) = &self.grid_cond {
                        // The prompt of each row, for readers of the grid.
                        let rows: Vec<String> = (0..self.grid_cond.len() / ncol)
                            .map(|r| self.grid_cond.describe((r * ncol) as usize))
                            .collect();
                        flowscale_core::write_atomic(
                            &path.with_extension("txt"),
                            format!("{}\n", rows.join("\n")).as_bytes(),
                        )?;
                    }
                    let tag = format!("samples/{label}/{setting_name}");
                    if let (Some(tb), Some(metrics)) = (self.tb.as_mut(), self.metrics.as_mut()) {
                        tb.image_png(&tag, &png, h, wd, c, step as i64)?;
                        let mut fields = Map::new();
                        fields.insert("grid".into(), json!(format!("samples/{name}")));
                        fields.insert("weights".into(), json!(label));
                        fields.insert("sampler_steps".into(), json!(steps));
                        fields.insert("cfg".into(), json!(cfg_scale));
                        fields.insert("frame".into(), json!(s.frame.name()));
                        fields.insert("shift".into(), json!(shift));
                        metrics.write(step, "samples", fields)?;
                    }
                }
            }
        }
        match &mut self.tb {
            Some(tb) => tb.flush(),
            None => Ok(()),
        }
    }

    /// Writes a checkpoint: the trained tensors (the backbone's at diffusers keys, the
    /// conditioner's under `conditioner.`), the fixed buffers, every EMA, the optimiser, state.
    pub(super) fn save_checkpoint(&mut self) -> Result<()> {
        self.sync_state()?;
        let step = self.state.step;
        let (rank, world) = self.rank_world();
        // A sharded optimiser: rank 0 starts the folder, every rank writes its shard into it,
        // and rank 0 commits once all have (a rank that fails stops the others at the barrier).
        let sharded = self.optimizer.is_sharded();
        let mut written = Vec::new();
        if sharded {
            if self.is_main() {
                self.store.begin(step)?;
            }
            self.barrier()?;
            self.optimizer
                .write_shard(&self.store.temp_path(step), (rank, world))?;
            self.barrier()?;
            // Every rank's shard is in the folder now.
            written.extend((0..world).map(|r| crate::distributed::zero::shard_file_name(r, world)));
        }
        if !self.is_main() {
            return Ok(());
        }
        // The trained tensors and the fixed buffers (the position table), so the folder
        // exports without the config.
        let mut model = self.params.clone_shallow();
        model.extend(self.model.buffers());
        let mut groups: Vec<(String, Vec<(String, Tensor)>)> = vec![("model".into(), model)];
        for (k, d) in self.ema.decays().to_vec().iter().enumerate() {
            groups.push((ema_group_name(*d), self.ema.named(k)));
        }
        if let Some(p) = &self.power_emas {
            for (k, s) in p.stds().iter().enumerate() {
                groups.push((power_ema_group_name(*s), p.named(k)));
            }
        }
        groups.extend(self.optimizer.replicated_group());
        let mcfg = self.model.config().to_json()?;
        self.store
            .protect(self.state.best_val_loss.map(|(_, step)| step));
        if !sharded {
            self.store.begin(step)?;
        }
        let tmp = self.store.temp_path(step);
        for (name, tensors) in &groups {
            written.push(crate::checkpoint::write_group(&tmp, name, tensors)?);
        }
        self.store.commit(
            step,
            written,
            &[("config.json", mcfg.as_bytes())],
            &self.state,
        )?;
        Ok(())
    }

    /// Waits for every rank (nothing to wait for in a single process).
    fn barrier(&self) -> Result<()> {
        match &self.dp {
            Some(d) => d.barrier(),
            None => Ok(()),
        }
    }
}

impl Trainer {
    /// Writes a snapshot of every power-function EMA into `<run>/posthoc/` (rank 0), for
    /// post-hoc reconstruction (`crate::posthoc::snapshots`).
    pub(super) fn write_posthoc_snapshots(&self) -> Result<()> {
        let (Some(p), true) = (&self.power_emas, self.is_main()) else {
            return Ok(());
        };
        for (k, (s, g)) in p.stds().iter().zip(p.gammas()).enumerate() {
            crate::posthoc::snapshots::write(&self.dir.root, *s, *g, self.state.step, &p.named(k))?;
        }
        Ok(())
    }
}

/// Copies `values` into `params` (matched by position; both come from the same name list).
pub fn copy_into(params: &[(String, Tensor)], values: &[Tensor]) -> Result<()> {
    let _guard = tch::no_grad_guard();
    for ((_, p), v) in params.iter().zip(values) {
        let mut target = p.shallow_clone();
        target.f_copy_(v)?;
    }
    Ok(())
}

/// Detached copies of the current values.
pub fn snapshot(params: &[(String, Tensor)]) -> Result<Vec<Tensor>> {
    let _guard = tch::no_grad_guard();
    params
        .iter()
        .map(|(_, p)| {
            let mut copy = p.f_zeros_like()?;
            copy.f_copy_(p)?;
            Ok(copy)
        })
        .collect()
}

trait CloneShallow {
    fn clone_shallow(&self) -> Vec<(String, Tensor)>;
}

impl CloneShallow for Vec<(String, Tensor)> {
    fn clone_shallow(&self) -> Vec<(String, Tensor)> {
        self.iter()
            .map(|(k, v)| (k.clone(), v.shallow_clone()))
            .collect()
    }
}
