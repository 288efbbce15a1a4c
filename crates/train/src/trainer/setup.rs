//! Building a run (fresh or resumed) and the optimisation step.

use super::feed::Feed;
use super::params::{trainable, CONDITIONER_PREFIX};
use crate::backbone::mmdit_config;
use crate::checkpoint::{CheckpointStore, LoadedCheckpoint};
use crate::conditioning::{ClassEmbedding, Conditioning, ConditioningProvider};
use crate::config::{
    ConditioningConfig, ConditioningProviderKind, GradReduceDtype, Precision, RunConfig,
};
use crate::distributed::{rank_device, select_backend, DataParallel};
use crate::ema::Ema;
use crate::error::{Result, TrainError};
use crate::metrics::MetricsWriter;
use crate::optim::{clip_grad_norm, grad_norm, AdamW, AdamWConfig, LrScheduler};
use crate::resume_compat::{config_hash, incompatible_changes};
use crate::run_dir::{write_atomic, RunDir};
use crate::state::TrainState;
use crate::tensorboard::EventWriter;
use crate::text_conditioning::CaptionConditioning;
use crate::validation::ValidationSet;
use flowscale_data::SamplerPosition;
use flowscale_formulations::{FlowRng, Formulation, Shift};
use flowscale_models::{forward_cost, Mmdit, MmditConfig};
use flowscale_torch_ext::c10d::LaunchEnv;
use std::path::PathBuf;
use std::time::Instant;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// How `flowscale train` was asked to run.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Continue from the newest complete checkpoint of the run directory.
    pub resume: bool,
    /// Override `logging.progress`.
    pub progress: Option<bool>,
    /// Stop (after checkpointing) once this many steps are done, without changing the schedule:
    /// what a preempted job does. Used by the resume tests.
    pub stop_at: Option<u64>,
    /// Quiet: no progress bar and no summary lines on stderr.
    pub quiet: bool,
}

/// Device-side running sums between two log points (no host synchronisation per step).
pub(super) struct Running {
    pub loss_sum: Tensor,
    pub samples: u64,
    pub bin_sum: Tensor,
    pub bin_count: Tensor,
    pub grad_norm_sum: Tensor,
    pub nonfinite: Tensor,
    pub steps: u64,
    pub since: Instant,
}

impl Running {
    pub fn new(bins: i64, device: Device) -> Result<Self> {
        let z = |n: &[i64]| Tensor::f_zeros(n, (Kind::Double, device));
        Ok(Self {
            loss_sum: z(&[])?,
            samples: 0,
            bin_sum: z(&[bins])?,
            bin_count: z(&[bins])?,
            grad_norm_sum: z(&[])?,
            nonfinite: z(&[])?,
            steps: 0,
            since: Instant::now(),
        })
    }
}

pub struct Trainer {
    pub(super) cfg: RunConfig,
    pub(super) options: TrainOptions,
    pub(super) dir: RunDir,
    pub(super) device: Device,
    pub(super) formulation: Formulation,
    pub(super) shift: Option<Shift>,
    pub(super) feed: Feed,
    pub(super) model_vs: VarStore,
    pub(super) model: Mmdit,
    pub(super) _cond_vs: VarStore,
    pub(super) conditioner: Box<dyn ConditioningProvider>,
    pub(super) params: Vec<(String, Tensor)>,
    pub(super) optimizer: AdamW,
    pub(super) schedule: LrScheduler,
    pub(super) ema: Ema,
    pub(super) store: CheckpointStore,
    /// Data-parallel group when launched with several ranks.
    pub(super) dp: Option<DataParallel>,
    /// Logs exist on rank 0 only.
    pub(super) tb: Option<EventWriter>,
    pub(super) metrics: Option<MetricsWriter>,
    pub(super) validation: ValidationSet,
    pub(super) grid_noise: Tensor,
    pub(super) grid_labels: Tensor,
    pub(super) rng: FlowRng,
    pub(super) state: TrainState,
    pub(super) flops_per_sample: f64,
    pub(super) running: Running,
    pub(super) session_start: Instant,
    pub(super) wall_at_start: f64,
}

impl Trainer {
    pub fn new(cfg: RunConfig, options: TrainOptions) -> Result<Self> {
        Self::build(cfg, options, false)
    }

    /// As [`Trainer::new`] for a process started alone, but inside a process group of one
    /// (`run.dist_backend` picks Gloo or NCCL): every step runs the data-parallel collectives,
    /// which have no peer to wait for. `flowscale bench train-step --process-group` times it.
    pub fn with_solo_group(cfg: RunConfig, options: TrainOptions) -> Result<Self> {
        Self::build(cfg, options, true)
    }

    fn build(cfg: RunConfig, options: TrainOptions, solo_group: bool) -> Result<Self> {
        let dir = RunDir::new(PathBuf::from(&cfg.run.out_dir).join(&cfg.run.name));
        let store = CheckpointStore::new(
            dir.checkpoints(),
            cfg.checkpoint.keep_last as usize,
            cfg.checkpoint.keep_every,
        );
        let latest = store.latest()?;
        match (&latest, options.resume) {
            (Some((step, _)), false) => {
                return Err(TrainError::Invalid(format!(
                    "{} already holds a checkpoint (step {step}); pass --resume to continue it, \
                     or choose another run.name / run.out_dir",
                    dir.root.display()
                )))
            }
            (Some(_), true) => check_resumable(&dir, &cfg)?,
            _ => {}
        }
        let dp_timeout = std::time::Duration::from_secs(cfg.run.dist_timeout_s);
        // Several processes (WORLD_SIZE > 1): one GPU each, cuda:LOCAL_RANK.
        let launch = LaunchEnv::from_env()
            .map_err(|e| TrainError::Invalid(format!("data parallel launch environment: {e}")))?
            .filter(|e| e.world_size > 1);
        let cuda_devices = usize::try_from(tch::Cuda::device_count()).unwrap_or(0);
        let device = rank_device(
            cfg.run.device,
            launch.as_ref().map(|e| e.local_rank),
            cuda_devices,
        )?;
        let grad_dtype = cfg.run.dist_grad_dtype.unwrap_or(GradReduceDtype::Fp32);
        let dp = match (&launch, solo_group) {
            (None, false) => None,
            (launch, _) => {
                let backend = select_backend(cfg.run.dist_backend, device)?;
                Some(match launch {
                    Some(env) => DataParallel::join(env, backend, grad_dtype, dp_timeout)?,
                    None => DataParallel::solo(backend, grad_dtype, dp_timeout)?,
                })
            }
        };
        let main = dp.as_ref().is_none_or(|d| d.rank() == 0);
        if main {
            dir.create()?;
            let resolved = crate::config::to_toml_string(&cfg)
                .map_err(|e| TrainError::Invalid(format!("cannot serialise the config: {e}")))?;
            write_atomic(&dir.config(), resolved.as_bytes())?;
        }

        let formulation = Formulation::parse(&cfg.formulation.name)
            .map_err(|e| TrainError::Invalid(format!("formulation.name: {e}")))?;
        let shift = if cfg.formulation.shift == 1.0 {
            None
        } else {
            Some(Shift::new(cfg.formulation.shift)?)
        };
        // Rank 0 alone draws sample grids, so only it loads a latent run's decoder.
        let mut feed = Feed::load(&cfg, device, main)?;
        let seed = cfg.run.seed;

        // Weights: a function of the seed only, whatever else runs in the process.
        let mcfg: MmditConfig = mmdit_config(&cfg, feed.channels(), feed.side());
        let c = &cfg.conditioning;
        let (model_vs, model, cond_vs, conditioner) =
            flowscale_formulations::with_torch_seed(seed as i64, || -> Result<_> {
                let model_vs = VarStore::new(device);
                let model = Mmdit::new(&model_vs.root(), &mcfg)
                    .map_err(|e| TrainError::Invalid(format!("model: {e}")))?;
                let cond_vs = VarStore::new(device);
                let conditioner: Box<dyn ConditioningProvider> = match c.provider {
                    ConditioningProviderKind::ClassEmbedding => Box::new(ClassEmbedding::new(
                        &cond_vs.root(),
                        feed.class_names().len() as i64,
                        i64::from(c.context_tokens),
                        i64::from(c.context_dim),
                        i64::from(c.pooled_dim),
                    )?),
                    ConditioningProviderKind::Captions => {
                        Box::new(caption_conditioning(c, feed.class_names(), device)?)
                    }
                };
                Ok((model_vs, model, cond_vs, conditioner))
            })?;
        let params = trainable(&model_vs, &cond_vs);
        // Rank 0's weights on every rank: identical by construction (same seed), the broadcast
        // makes it a guarantee; after a resume, once the checkpoint is restored.
        let resuming = options.resume && latest.is_some();
        let broadcast_params = |dp: &Option<DataParallel>| -> Result<()> {
            match dp {
                Some(d) => d.broadcast(
                    &params
                        .iter()
                        .map(|(_, p)| p.shallow_clone())
                        .collect::<Vec<_>>(),
                ),
                None => Ok(()),
            }
        };
        if !resuming {
            broadcast_params(&dp)?;
        }
        let o = &cfg.optim;
        let mut optimizer = AdamW::new(
            &params,
            AdamWConfig {
                betas: (o.betas[0], o.betas[1]),
                eps: o.eps,
                weight_decay: o.weight_decay,
            },
        )?;
        let schedule = LrScheduler {
            peak: o.lr,
            warmup_steps: o.warmup_steps,
            total_steps: cfg.train.steps,
            kind: o.schedule,
            min_lr: o.min_lr,
        };
        let mut ema = Ema::new(&params, &cfg.ema.decays, cfg.ema.every, cfg.ema.warmup)?;

        let side = feed.side();
        let cost = forward_cost(&mcfg, side, side, i64::from(c.context_tokens))
            .map_err(|e| TrainError::Invalid(format!("model cost: {e}")))?;
        let flops_per_sample = 3.0 * cost.flops();

        let mut rng = FlowRng::new(seed);
        let mut state = TrainState {
            step: 0,
            images_seen: 0,
            config_hash: config_hash(&cfg)?,
            seed,
            rng_state: rng.state(),
            data_epoch: 0,
            data_index: 0,
            data_positions: None,
            lr: 0.0,
            wall_time_s: 0.0,
            skipped_steps: 0,
            train_flops: 0.0,
            best_val_loss: None,
            flowscale_version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        let batch = cfg.train.batch_size as usize;
        let mut position = SamplerPosition::default();
        if let (Some((_, path)), true) = (&latest, options.resume) {
            let ck: LoadedCheckpoint<TrainState> = CheckpointStore::load(path)?;
            if ck.state.config_hash != state.config_hash {
                return Err(TrainError::Invalid(format!(
                    "{}: written with config hash {}, this config hashes to {}",
                    path.display(),
                    ck.state.config_hash,
                    state.config_hash
                )));
            }
            let buffers = model_vs
                .variables()
                .into_iter()
                .filter(|(_, t)| !t.requires_grad())
                .map(|(k, _)| k)
                .collect();
            restore(&ck, &params, &mut optimizer, &mut ema, &cfg.ema, &buffers)?;
            state = ck.state;
            rng = FlowRng::from_state(state.rng_state).ok_or_else(|| {
                TrainError::Invalid(format!("{}: invalid generator state", path.display()))
            })?;
            position = SamplerPosition {
                epoch: state.data_epoch,
                index: state.data_index,
            };
        }
        if resuming {
            broadcast_params(&dp)?;
        }
        let world = dp.as_ref().map_or(1, DataParallel::world_size);
        let rank = dp.as_ref().map_or(0, DataParallel::rank);
        match &mut feed {
            // Every rank draws the same global batch and trains on its share of it.
            Feed::Pixels { data, sampler, .. } => {
                *sampler = Some(data.sampler(batch * world, seed ^ 0x5eed_da7a, position)?)
            }
            // Every rank streams its own shards.
            Feed::Latents(l) => {
                let saved = match (resuming, &state.data_positions) {
                    (false, _) => None,
                    (true, Some(p)) if p.len() == world => Some(&p[rank]),
                    (true, p) => {
                        return Err(TrainError::Invalid(format!(
                            "the checkpoint holds shard-loader positions for {} rank(s), this \
                             run has {world}; resume with the same number of ranks",
                            p.as_ref().map_or(0, Vec::len)
                        )))
                    }
                };
                l.start(&cfg, (rank, world), seed ^ 0x5eed_da7a, device, saved)?;
            }
        }
        let (metrics, tb) = if main {
            (
                Some(MetricsWriter::open(
                    &dir.metrics(),
                    options.resume.then_some(state.step),
                )?),
                Some(EventWriter::create(&dir.tensorboard())?),
            )
        } else {
            (None, None)
        };

        let (vx, vl) = feed.held_out(cfg.validation.samples as usize, device)?;
        let validation = ValidationSet::new(vx, vl, seed ^ 0x7a11_da7e)?;
        let (grid_noise, grid_labels) = grid_inputs(&cfg, &feed, device)?;
        let running = Running::new(i64::from(cfg.logging.t_bins), device)?;
        let wall_at_start = state.wall_time_s;
        Ok(Self {
            cfg,
            options,
            dir,
            device,
            formulation,
            shift,
            feed,
            model_vs,
            model,
            _cond_vs: cond_vs,
            conditioner,
            params,
            optimizer,
            schedule,
            ema,
            store,
            dp,
            tb,
            metrics,
            validation,
            grid_noise,
            grid_labels,
            rng,
            state,
            flops_per_sample,
            running,
            session_start: Instant::now(),
            wall_at_start,
        })
    }

    pub fn state(&self) -> &TrainState {
        &self.state
    }

    pub fn run_dir(&self) -> &RunDir {
        &self.dir
    }

    pub fn device(&self) -> Device {
        self.device
    }

    pub fn model_store(&self) -> &VarStore {
        &self.model_vs
    }

    pub fn model(&self) -> &Mmdit {
        &self.model
    }

    /// `(rank, world size)`: `(0, 1)` without data parallelism.
    pub fn rank_world(&self) -> (usize, usize) {
        self.dp
            .as_ref()
            .map_or((0, 1), |d| (d.rank(), d.world_size()))
    }

    /// Rank 0 (or the only process): the one that writes logs, samples and checkpoints.
    pub fn is_main(&self) -> bool {
        self.rank_world().0 == 0
    }

    /// One optimiser step without hooks (benchmarks).
    pub fn step(&mut self) -> Result<()> {
        self.train_step()
    }

    /// Time spent averaging gradients across the process group so far; `None` without one.
    pub fn gradient_sync_time(&self) -> Option<std::time::Duration> {
        self.dp.as_ref().map(DataParallel::gradient_sync_time)
    }

    /// Waits for the device (a host read of the running loss), so timings include all queued work.
    pub fn synchronize(&self) -> Result<()> {
        let _ = self.running.loss_sum.f_double_value(&[])?;
        Ok(())
    }

    /// The backbone under the run's precision: bf16 autocast on CUDA, fp32 otherwise.
    pub(super) fn forward(&self, x: &Tensor, t: &Tensor, cond: &Conditioning) -> Result<Tensor> {
        let run = || {
            self.model
                .forward(x, t, &cond.context, &cond.pooled)
                .map_err(|e| TrainError::Invalid(format!("model forward: {e}")))
        };
        let out = if self.cfg.train.precision == Precision::Bf16 && self.device.is_cuda() {
            flowscale_torch_ext::autocast::with_autocast(self.device, Kind::BFloat16, run)
                .map_err(|e| TrainError::Invalid(format!("autocast: {e}")))??
        } else {
            run()?
        };
        Ok(out.f_to_kind(Kind::Float)?)
    }

    /// CFG dropout masks, one `[B]` float mask per conditioning source, drawn from `rng`.
    fn keep_masks(&self, rng: &mut FlowRng, batch: i64) -> Result<Vec<Tensor>> {
        let p = self.cfg.conditioning.dropout;
        (0..self.conditioner.sources())
            .map(|_| {
                let keep: Vec<f32> = (0..batch)
                    .map(|_| if rng.uniform() < p { 0.0 } else { 1.0 })
                    .collect();
                Ok(Tensor::f_from_slice(&keep)?.f_to_device(self.device)?)
            })
            .collect()
    }

    /// This rank's micro-batch: the formulation's inputs and targets, labels and CFG masks, and
    /// the number of samples all ranks process together.
    fn micro_batch(
        &mut self,
        rank: usize,
        world: usize,
    ) -> Result<(
        flowscale_formulations::TrainingBatch,
        Tensor,
        Vec<Tensor>,
        i64,
    )> {
        let device = self.device;
        let (shift, formulation) = (self.shift, self.formulation);
        match &mut self.feed {
            Feed::Pixels { data, sampler, .. } => {
                let idx = sampler.as_mut().expect("set in new").next_indices()?;
                let (x0, labels) = data.batch(&idx, device)?;
                let global = x0.size()[0];
                let mut rng = std::mem::replace(&mut self.rng, FlowRng::new(0));
                let keep = self.keep_masks(&mut rng, global);
                let batch = keep
                    .and_then(|keep| Ok((keep, formulation.training_batch(&x0, &mut rng, shift)?)));
                self.rng = rng;
                let (keep, batch) = batch?;
                if world == 1 {
                    return Ok((batch, labels, keep, global));
                }
                // This rank's share of the global batch.
                let b = global / world as i64;
                let first = rank as i64 * b;
                Ok((
                    batch.rows(first as usize, b as usize)?,
                    labels.f_narrow(0, first, b)?,
                    keep.iter()
                        .map(|k| k.f_narrow(0, first, b))
                        .collect::<std::result::Result<Vec<_>, _>>()?,
                    global,
                ))
            }
            Feed::Latents(l) => {
                // Each rank has its own samples, so its own draws: a generator seeded from the
                // shared one (which advances identically on every rank) and the rank.
                let mut local = FlowRng::new(
                    self.rng.next_u64() ^ (rank as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                );
                let (x0, labels) = l.next(&mut local, device)?;
                let b = x0.size()[0];
                let keep = self.keep_masks(&mut local, b)?;
                let batch = formulation.training_batch(&x0, &mut local, shift)?;
                Ok((batch, labels, keep, b * world as i64))
            }
        }
    }

    /// One optimiser step (with gradient accumulation). Returns nothing; statistics stay on the
    /// device in `self.running`.
    pub(super) fn train_step(&mut self) -> Result<()> {
        let accum = self.cfg.train.grad_accum;
        let bins = i64::from(self.cfg.logging.t_bins);
        let step_loss = Tensor::f_zeros([] as [i64; 0], (Kind::Double, self.device))?;
        let (rank, world) = self.rank_world();
        for _ in 0..accum {
            let (batch, labels, keep, global) = self.micro_batch(rank, world)?;
            let cond = self.conditioner.encode(&labels, &keep)?;
            let out = self.forward(&batch.net_input, &batch.time_input, &cond)?;
            let per = batch.per_sample_loss(&out)?;
            let loss = per.f_mean(Kind::Float)?.f_div_scalar(accum as f64)?;
            loss.f_backward()?;
            let per = per.f_detach()?.f_to_kind(Kind::Double)?;
            let _ = step_loss
                .shallow_clone()
                .f_add_(&per.f_sum(Kind::Double)?)?;
            // Loss per bin of t_eq, accumulated without leaving the device.
            let bin_index: Vec<i64> = batch
                .levels
                .iter()
                .map(|l| ((l.t_eq * bins as f64) as i64).clamp(0, bins - 1))
                .collect();
            let bin_index = Tensor::f_from_slice(&bin_index)?.f_to_device(self.device)?;
            let _ = self.running.bin_sum.f_index_add_(0, &bin_index, &per)?;
            let _ = self
                .running
                .bin_count
                .f_index_add_(0, &bin_index, &per.f_ones_like()?)?;
            self.running.samples += global as u64;
            self.state.images_seen += global as u64;
        }
        let tensors: Vec<Tensor> = self.params.iter().map(|(_, p)| p.shallow_clone()).collect();
        if let Some(d) = &mut self.dp {
            d.average_gradients(&tensors)?;
            // The global loss, so every rank takes the same non-finite decision.
            d.sum(&step_loss)?;
        }
        let norm = match self.cfg.optim.grad_clip {
            Some(max) => clip_grad_norm(&tensors, max)?,
            None => grad_norm(&tensors)?,
        };
        if let Some(n) = norm {
            let _ = self
                .running
                .grad_norm_sum
                .f_add_(&n.f_to_kind(Kind::Double)?)?;
        }
        let finite = step_loss.f_isfinite()?;
        let lr = self.schedule.lr(self.state.step);
        let skip = self.cfg.logging.nonfinite == crate::config::NonFinitePolicy::Skip
            // The one per-step host read, only when skipping is configured: the optimiser must
            // know before it updates the weights.
            && finite.int64_value(&[]) == 0;
        if skip {
            self.state.skipped_steps += 1;
        } else {
            self.optimizer.step(lr)?;
        }
        self.optimizer.zero_grad();
        self.conditioner_zero_grad();
        let _ = self.running.loss_sum.f_add_(&step_loss)?;
        let _ = self
            .running
            .nonfinite
            .f_add_(&finite.f_logical_not()?.f_to_kind(Kind::Double)?)?;
        self.state.step += 1;
        self.state.lr = lr;
        self.state.train_flops +=
            self.flops_per_sample * (self.cfg.train.batch_size * accum * world as u64) as f64;
        self.ema.after_step(self.state.step, &self.params)?;
        self.running.steps += 1;
        Ok(())
    }

    fn conditioner_zero_grad(&mut self) {
        for (name, p) in &mut self.params {
            if name.starts_with(CONDITIONER_PREFIX) {
                p.zero_grad();
            }
        }
    }

    /// Refreshes the resumable parts of the state (generator, data position, wall time). With
    /// latent shards every rank's loader position is gathered (a collective: all ranks call it).
    pub(super) fn sync_state(&mut self) -> Result<()> {
        self.state.rng_state = self.rng.state();
        match &self.feed {
            Feed::Pixels { sampler, .. } => {
                let pos = sampler.as_ref().expect("set in new").position();
                self.state.data_epoch = pos.epoch;
                self.state.data_index = pos.index;
            }
            Feed::Latents(l) => {
                let own = l.position().expect("started in new");
                let all = match &self.dp {
                    Some(d) => d.gather_json(&own)?,
                    None => vec![own],
                };
                self.state.data_epoch = all[0].epoch;
                self.state.data_index = all[0].batches as usize;
                self.state.data_positions = Some(all);
            }
        }
        self.state.wall_time_s = self.wall_at_start + self.session_start.elapsed().as_secs_f64();
        Ok(())
    }
}

/// Refuses to resume when the saved resolved config differs in keys that matter.
fn check_resumable(dir: &RunDir, cfg: &RunConfig) -> Result<()> {
    let path = dir.config();
    let old: RunConfig = crate::config::load(&path, &[])
        .map_err(|e| TrainError::Invalid(format!("cannot read the run's saved config: {e}")))?;
    let diff = incompatible_changes(&old, cfg)?;
    if diff.is_empty() {
        return Ok(());
    }
    Err(TrainError::Invalid(format!(
        "cannot resume {}: the config differs from the run's in keys a checkpoint depends on:\n  {}\n\
         (only run.device, train.steps, validation.every, samples.*, checkpoint.* and logging.* may change)",
        dir.root.display(),
        diff.join("\n  ")
    )))
}

/// Restores model, EMA and optimiser tensors from a checkpoint, checking every name and shape.
fn restore(
    ck: &LoadedCheckpoint<TrainState>,
    params: &[(String, Tensor)],
    optimizer: &mut AdamW,
    ema: &mut Ema,
    ema_cfg: &crate::config::EmaConfig,
    buffers: &std::collections::HashSet<String>,
) -> Result<()> {
    let group = |name: &str| {
        ck.groups.get(name).ok_or_else(|| {
            TrainError::Invalid(format!("{}: no {name}.safetensors", ck.dir.display()))
        })
    };
    let model = group("model")?;
    let mut problems: Vec<String> = vec![];
    for (name, p) in params {
        match model.get(name) {
            None => problems.push(format!("missing {name}")),
            Some(t) if t.size() != p.size() => problems.push(format!(
                "{name}: shape {:?}, expected {:?}",
                t.size(),
                p.size()
            )),
            _ => {}
        }
    }
    let known: std::collections::HashSet<&String> = params.iter().map(|(n, _)| n).collect();
    problems.extend(
        model
            .keys()
            .filter(|k| !known.contains(k) && !buffers.contains(k.as_str()))
            .map(|k| format!("unexpected {k}")),
    );
    if !problems.is_empty() {
        problems.sort();
        return Err(TrainError::Invalid(format!(
            "{}/model.safetensors does not match the model: {}",
            ck.dir.display(),
            problems.join(", ")
        )));
    }
    {
        let _guard = tch::no_grad_guard();
        for (name, p) in params {
            let mut target = p.shallow_clone();
            target.f_copy_(&model[name])?;
        }
    }
    optimizer.load_state(group("optimizer")?, ck.state.step)?;
    let updates = ck.state.step / ema_cfg.every.max(1);
    for (k, d) in ema_cfg.decays.iter().enumerate() {
        ema.load(k, group(&ema_group_name(*d))?, updates)?;
    }
    Ok(())
}

/// Checkpoint group name of an EMA: `ema-0.999`.
pub fn ema_group_name(decay: f64) -> String {
    format!("ema-{decay}")
}

/// Fixed noise and labels of the sample grids: one row per class.
fn grid_inputs(cfg: &RunConfig, feed: &Feed, device: Device) -> Result<(Tensor, Tensor)> {
    let per = i64::from(cfg.samples.per_class);
    let classes = feed.class_names().len() as i64;
    let labels: Vec<i64> = (0..classes)
        .flat_map(|c| std::iter::repeat_n(c, per as usize))
        .collect();
    let side = feed.side();
    let noise =
        flowscale_formulations::with_torch_seed((cfg.run.seed ^ 0x9a1d_5eed) as i64 >> 1, || {
            Tensor::f_randn(
                [classes * per, feed.channels(), side, side].as_slice(),
                (Kind::Float, device),
            )
        })?;
    Ok((noise, Tensor::f_from_slice(&labels)?.f_to_device(device)?))
}

/// The class captions of `conditioning.caption_template`, encoded by the frozen text encoder of
/// `conditioning.text_encoder`, whose shapes must be the configured context and pooled shapes.
fn caption_conditioning(
    c: &ConditioningConfig,
    class_names: &[String],
    device: Device,
) -> Result<CaptionConditioning> {
    use flowscale_encoders::text::{TextEncoder, TextEncoderConfig};
    let path = c.text_encoder.as_deref().ok_or_else(|| {
        TrainError::Invalid(
            "conditioning.text_encoder is required with provider = \"captions\"".into(),
        )
    })?;
    let enc_cfg = TextEncoderConfig::load(std::path::Path::new(path))?;
    let encoder = TextEncoder::load(&enc_cfg, device)?;
    let (tokens, width, pooled) = encoder.shapes();
    let want = (
        i64::from(c.context_tokens),
        i64::from(c.context_dim),
        i64::from(c.pooled_dim),
    );
    if (tokens, width, pooled) != want {
        return Err(TrainError::Invalid(format!(
            "conditioning: the text encoder of {path} gives {tokens} context tokens of {width} and a \
             pooled vector of {pooled}; set conditioning.context_tokens = {tokens}, context_dim = \
             {width}, pooled_dim = {pooled} (now {}, {}, {})",
            want.0, want.1, want.2
        )));
    }
    let captions: Vec<String> = class_names
        .iter()
        .map(|n| c.caption_template.replace("{}", n))
        .collect();
    let refs: Vec<&str> = captions.iter().map(String::as_str).collect();
    CaptionConditioning::new(&encoder, &refs, 32, device)
}
