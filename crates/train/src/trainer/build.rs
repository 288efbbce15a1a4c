//! Building a trainer, fresh or resumed, in named phases: the run directory, the process group,
//! the model (through the run layer), the optimiser and EMA, the resume from a checkpoint, the
//! data position, the logs, and the fixed inputs of validation and sample grids. Each phase
//! receives the config sections it needs.

use super::{graphed_step, RunOptimizer, Running, TrainOptions, Trainer};
use crate::batch_plan::BatchPlan;
use crate::checkpoint::{CheckpointStore, LoadedCheckpoint};
use crate::cond_input::CondInput;
use crate::config::{
    DataConfig, EmaConfig, GradReduceDtype, OptimConfig, RunConfig, RunSection, SamplesConfig,
    ShiftSetting, DEFAULT_SHIFT_BASE_RESOLUTION,
};
use crate::distributed::{rank_device, select_backend, DataParallel};
use crate::ema::Ema;
use crate::error::{Result, TrainError};
use crate::memory::{fit_warning, MemoryPlan, PlanSpec};
use crate::metrics::MetricsWriter;
use crate::optim::{AdamWConfig, LrScheduler};
use crate::posthoc::{power_ema_group_name, PowerEmas};
use crate::resume_compat::{config_hash, incompatible_changes};
use crate::run::{
    ema_group_name, init_from_checkpoint, load_intact, CondSource, LatentPosition, RunData,
    RunModel, RunModelSpec,
};
use crate::run_dir::{write_atomic, RunDir};
use crate::state::TrainState;
use crate::tensorboard::EventWriter;
use crate::validation::ValidationSet;
use flowscale_core::{DirLock, FlowRng};
use flowscale_data::{BatchSampler, SamplerPosition};
use flowscale_formulations::{Formulation, Shift};
use flowscale_torch_ext::c10d::LaunchEnv;
use std::path::PathBuf;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

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
        // The base resolution of `shift = "auto"`, for the line that reports its alpha.
        let auto_base = (cfg.formulation.shift == ShiftSetting::Auto).then(|| {
            cfg.formulation
                .shift_base_resolution
                .unwrap_or(DEFAULT_SHIFT_BASE_RESOLUTION)
        });
        // Resolved once, before the config is recorded: the saved config, its hash and every
        // later reader of the run (eval, generate, export) see the alpha it trains with.
        let cfg = cfg.with_resolved_shift()?;
        let dir = RunDir::new(PathBuf::from(&cfg.run.out_dir).join(&cfg.run.name));
        let store = CheckpointStore::new(
            dir.checkpoints(),
            cfg.checkpoint.keep_last as usize,
            cfg.checkpoint.keep_every,
        );
        let (device, dp) = join_process_group(&cfg.run, solo_group)?;
        let main = dp.as_ref().is_none_or(|d| d.rank() == 0);
        // Before anything is loaded: a global batch the ranks cannot share is a config error.
        let batch = BatchPlan::new(&cfg.train, dp.as_ref().map_or(1, |d| d.world_size()))?;
        if main && !options.quiet && batch.global != batch.micro {
            eprintln!("{}", batch.describe());
        }
        // One writer per run directory: rank 0 holds its lock until the trainer is dropped, and
        // takes it before reading anything of the run.
        let lock = if main {
            dir.create()?;
            Some(DirLock::acquire(&dir.root, "flowscale train")?)
        } else {
            None
        };
        let resume_from = checkpoint_to_resume(&dir, &store, &cfg, options.resume)?;
        if let (Some(r), false) = (&resume_from, options.quiet) {
            for s in &r.skipped {
                eprintln!("warning: skipped a damaged checkpoint: {s}");
            }
            eprintln!(
                "resuming from step {} ({})",
                r.checkpoint.step,
                r.checkpoint.dir.display()
            );
        }
        if main {
            let resolved = crate::config::to_toml_string(&cfg)
                .map_err(|e| TrainError::Invalid(format!("cannot serialise the config: {e}")))?;
            write_atomic(&dir.config(), resolved.as_bytes())?;
        }
        let formulation = Formulation::parse(&cfg.formulation.name)
            .map_err(|e| TrainError::Invalid(format!("formulation.name: {e}")))?;
        let alpha = cfg.shift_alpha()?;
        if let (Some(base), true, false) = (auto_base, main, options.quiet) {
            eprintln!(
                "formulation.shift = \"auto\": alpha = {alpha} ({} px against a base of {base} px)",
                cfg.data.resolution
            );
        }
        let shift = if alpha == 1.0 {
            None
        } else {
            Some(Shift::new(alpha)?)
        };

        // Model: rank 0 alone draws sample grids, so only it loads a latent run's decoder.
        let mut data = RunData::open(&cfg.data, &cfg.conditioning, device, main)?;
        let graphed = graphed_step::for_run(&cfg, options.static_step_inputs, device, &data)?;
        let spec = RunModelSpec::for_run(&cfg, &data)?;
        if main && !options.quiet && device.is_cuda() {
            // Before the model takes its memory: the measurement builds two blocks of its width.
            warn_if_too_large(&cfg, &spec, data.side(), &batch, dp.as_ref(), device)?;
        }
        let model = RunModel::build(&spec, device)?;
        // [init]: a fresh run starts from another run's weights, loaded before the optimiser
        // and the EMAs take their copies; a resumed run continues from its own checkpoint.
        if let (Some(init), None) = (&cfg.init, &resume_from) {
            let report = init_from_checkpoint(&model, init)?;
            if main {
                report.write(&dir.init_report())?;
                if !options.quiet {
                    eprintln!("{}", report.summary());
                }
            }
        }
        if main && !options.quiet && cfg.train.precision == crate::config::Precision::Bf16 {
            eprintln!("precision: {}", model.precision_description());
        }
        let sources = model.conditioning_sources();
        check_source_names(&cfg, &sources)?;
        let source_dropout = sources
            .iter()
            .map(|name| cfg.conditioning.dropout_of(name))
            .collect();
        let params = model.params();
        let rank_world = dp.as_ref().map_or((0, 1), |d| (d.rank(), d.world_size()));
        let mut optimizer = RunOptimizer::new(
            &params,
            adamw_config(&cfg.optim),
            cfg.train.zero_stage,
            rank_world,
        )?;
        let schedule = lr_schedule(&cfg.optim, cfg.train.steps);
        let mut ema = Ema::new(&params, &cfg.ema.decays, cfg.ema.every, cfg.ema.warmup)?;
        let mut power_emas = match &cfg.ema.posthoc {
            Some(p) => Some(PowerEmas::new(&params, &p.stds)?),
            None => None,
        };
        let flops_per_sample = model.train_flops_per_sample(data.side())?;
        let bucket_flops = data
            .bucket_shapes()
            .into_iter()
            .map(|[h, w]| Ok(([h, w], model.train_flops_per_sample_at(h, w)?)))
            .collect::<Result<Vec<_>>>()?;

        // Resume: the checkpoint's tensors, state and generator replace the fresh ones; the
        // checkpoint's tensors are let go once restored. `skipped` names the damaged newer
        // checkpoints passed over (`None` for a fresh run).
        let mut rng = FlowRng::new(cfg.run.seed);
        let mut state = fresh_state(&cfg, &rng)?;
        let mut skipped: Option<Vec<String>> = None;
        if let Some(Resume {
            checkpoint: ck,
            skipped: passed_over,
        }) = resume_from
        {
            let path = &ck.dir;
            if ck.state.config_hash != state.config_hash {
                return Err(TrainError::Invalid(format!(
                    "{}: written with config hash {}, this config hashes to {}",
                    path.display(),
                    ck.state.config_hash,
                    state.config_hash
                )));
            }
            restore(&ck, &model, &mut ema, &cfg.ema)?;
            optimizer.restore(&ck, rank_world)?;
            if let Some(p) = &mut power_emas {
                restore_power_emas(&ck, p)?;
            }
            rng = FlowRng::from_state(ck.state.rng_state).ok_or_else(|| {
                TrainError::corrupt(
                    path.join(crate::checkpoint::STATE_FILE),
                    "invalid generator state",
                )
            })?;
            state = ck.state;
            skipped = Some(passed_over);
        }
        // Rank 0's weights on every rank: identical by construction (same seed), the broadcast
        // makes it a guarantee; after a resume, once the checkpoint is restored.
        if let Some(d) = &dp {
            d.broadcast(
                &params
                    .iter()
                    .map(|(_, p)| p.shallow_clone())
                    .collect::<Vec<_>>(),
            )?;
        }

        // Data position: where the resumed run's data order stands.
        let sampler = start_data(
            &mut data,
            &cfg.data,
            &batch,
            rank_world,
            cfg.run.seed,
            device,
            skipped.is_some().then_some(&state),
        )?;

        // Logs (rank 0), and the fixed inputs of validation and sample grids.
        let (metrics, tb) = if main {
            let mut metrics =
                MetricsWriter::open(&dir.metrics(), skipped.is_some().then_some(state.step))?;
            if let Some(s) = skipped.as_ref().filter(|s| !s.is_empty()) {
                // A fallback past damaged checkpoints is part of the run's record.
                let mut fields = serde_json::Map::new();
                fields.insert("skipped_damaged".into(), serde_json::json!(s));
                metrics.write(state.step, "resume", fields)?;
            }
            (
                Some(metrics),
                Some(EventWriter::create(&dir.tensorboard())?),
            )
        } else {
            (None, None)
        };
        let (vx, vl) = data.held_out(cfg.validation.samples as usize, device)?;
        let validation = ValidationSet::new(vx, vl, cfg.run.seed ^ 0x7a11_da7e)?;
        let (grid_noise, grid_cond) = grid_inputs(&cfg.samples, cfg.run.seed, &data, device)?;
        let running = Running::new(i64::from(cfg.logging.t_bins), device)?;
        let wall_at_start = state.wall_time_s;
        let peak_flops = crate::peak_flops::device_peak_flops(cfg.logging.peak_tflops, device);
        Ok(Self {
            cfg,
            options,
            dir,
            device,
            formulation,
            shift,
            data,
            sampler,
            model,
            params,
            optimizer,
            schedule,
            ema,
            power_emas,
            store,
            dp,
            tb,
            metrics,
            validation,
            grid_noise,
            grid_cond,
            rng,
            state,
            flops_per_sample,
            bucket_flops,
            peak_flops,
            batch,
            source_dropout,
            running,
            graphed,
            session_start: Instant::now(),
            wall_at_start,
            _lock: lock,
        })
    }
}

/// Prints a warning when the memory plan of this run (states from the backbone's layout,
/// activations measured at its width on `device`) exceeds the device's memory.
fn warn_if_too_large(
    cfg: &RunConfig,
    spec: &RunModelSpec,
    side: i64,
    batch: &BatchPlan,
    dp: Option<&DataParallel>,
    device: Device,
) -> Result<()> {
    let Device::Cuda(index) = device else {
        return Ok(());
    };
    let emas = cfg.ema.decays.len() + cfg.ema.posthoc.as_ref().map_or(0, |p| p.stds.len());
    let plan_spec = PlanSpec {
        config: spec.backbone.clone(),
        side,
        context_tokens: i64::from(cfg.conditioning.context_tokens),
        micro_batch: batch.micro,
        world: dp.map_or(1, |d| d.world_size() as u64),
        precision: cfg.train.precision,
        checkpointing: cfg.train.activation_checkpointing,
        zero: cfg.train.zero_stage,
        emas: emas as u64,
    };
    let (plan, _) = MemoryPlan::measure(&plan_spec, device)?;
    flowscale_torch_ext::cuda::empty_cache()?;
    let capacity = flowscale_torch_ext::cuda::device_total_memory(index)?;
    if let Some(w) = fit_warning(&plan, capacity, &plan_spec) {
        eprintln!("warning: {w}");
    }
    Ok(())
}

/// The checkpoint a resumed run continues from, loaded, and the damaged newer ones it skipped.
struct Resume {
    checkpoint: LoadedCheckpoint<TrainState>,
    skipped: Vec<String>,
}

/// The newest intact checkpoint of the run, for a resume; refuses a directory that holds
/// checkpoints without `--resume`, and a resume whose config differs in keys a checkpoint
/// depends on. A checkpoint that fails to load (a file damaged since it was written, a state
/// whose step is not its folder's) is skipped for the next older one, and named.
fn checkpoint_to_resume(
    dir: &RunDir,
    store: &CheckpointStore,
    cfg: &RunConfig,
    resume: bool,
) -> Result<Option<Resume>> {
    let all = store.list()?;
    match (all.last(), resume) {
        (Some((step, _)), false) => {
            return Err(TrainError::Invalid(format!(
                "{} already holds a checkpoint (step {step}); pass --resume to continue it, \
                 or choose another run.name / run.out_dir",
                dir.root.display()
            )))
        }
        (None, _) => return Ok(None),
        (Some(_), true) => check_resumable(dir, cfg)?,
    }
    let mut skipped = Vec::new();
    for (_, path) in all.iter().rev() {
        match load_intact(path) {
            Ok(checkpoint) => {
                return Ok(Some(Resume {
                    checkpoint,
                    skipped,
                }))
            }
            Err(e) => skipped.push(e.to_string()),
        }
    }
    Err(TrainError::Invalid(format!(
        "{}: no intact checkpoint to resume from:\n  {}",
        dir.root.display(),
        skipped.join("\n  ")
    )))
}

/// This process's device and, when launched with several ranks (or asked for a group of one),
/// its data-parallel group.
fn join_process_group(
    run: &RunSection,
    solo_group: bool,
) -> Result<(Device, Option<DataParallel>)> {
    let timeout = std::time::Duration::from_secs(run.dist_timeout_s);
    // Several processes (WORLD_SIZE > 1): one GPU each, cuda:LOCAL_RANK.
    let launch = LaunchEnv::from_env()
        .map_err(|e| TrainError::Invalid(format!("data parallel launch environment: {e}")))?
        .filter(|e| e.world_size > 1);
    let cuda_devices = usize::try_from(tch::Cuda::device_count()).unwrap_or(0);
    let device = rank_device(
        run.device,
        launch.as_ref().map(|e| e.local_rank),
        cuda_devices,
    )?;
    let grad_dtype = run.dist_grad_dtype.unwrap_or(GradReduceDtype::Fp32);
    let dp = match (&launch, solo_group) {
        (None, false) => None,
        (launch, _) => {
            let backend = select_backend(run.dist_backend, device)?;
            Some(match launch {
                Some(env) => DataParallel::join(env, backend, grad_dtype, timeout)?,
                None => DataParallel::solo(backend, grad_dtype, timeout)?,
            })
        }
    };
    Ok((device, dp))
}

fn adamw_config(o: &OptimConfig) -> AdamWConfig {
    AdamWConfig {
        betas: (o.betas[0], o.betas[1]),
        eps: o.eps,
        weight_decay: o.weight_decay,
    }
}

fn lr_schedule(o: &OptimConfig, total_steps: u64) -> LrScheduler {
    LrScheduler {
        peak: o.lr,
        warmup_steps: o.warmup_steps,
        total_steps,
        kind: o.schedule,
        min_lr: o.min_lr,
    }
}

fn fresh_state(cfg: &RunConfig, rng: &FlowRng) -> Result<TrainState> {
    Ok(TrainState {
        step: 0,
        images_seen: 0,
        config_hash: config_hash(cfg)?,
        seed: cfg.run.seed,
        rng_state: rng.state(),
        data_epoch: 0,
        data_index: 0,
        data_positions: None,
        data_bucket_positions: None,
        lr: 0.0,
        wall_time_s: 0.0,
        skipped_steps: 0,
        train_flops: 0.0,
        best_val_loss: None,
        flowscale_version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}

/// Puts the data at the start, or where the resumed state left it: pixel runs get the global
/// batch sampler (every rank draws the same global batch and trains on its share), latent runs
/// start this rank's shard loader (every rank streams its own shards).
/// The pixel runs' sampler draws the global batch (every rank the same, each trains on its
/// share); each rank's shard loader yields micro-batches.
fn start_data(
    data: &mut RunData,
    d: &DataConfig,
    batch: &BatchPlan,
    (rank, world): (usize, usize),
    seed: u64,
    device: Device,
    resumed: Option<&TrainState>,
) -> Result<Option<BatchSampler>> {
    let seed = seed ^ 0x5eed_da7a;
    match data {
        RunData::Pixels(p) => {
            let position = resumed.map_or_else(SamplerPosition::default, |s| SamplerPosition {
                epoch: s.data_epoch,
                index: s.data_index,
            });
            Ok(Some(p.sampler(batch.global as usize, seed, position)?))
        }
        RunData::Latents(l) => {
            let wrong_world = |n: usize| {
                TrainError::Invalid(format!(
                    "the checkpoint holds shard-loader positions for {n} rank(s), this run has \
                     {world}; resume with the same number of ranks"
                ))
            };
            let saved = match resumed {
                None => None,
                Some(s) => match (&s.data_positions, &s.data_bucket_positions) {
                    (Some(p), _) if p.len() == world => {
                        Some(LatentPosition::Plain(p[rank].clone()))
                    }
                    (_, Some(p)) if p.len() == world => {
                        Some(LatentPosition::Bucketed(p[rank].clone()))
                    }
                    (p, b) => {
                        let n = p.as_ref().map(Vec::len).or(b.as_ref().map(Vec::len));
                        return Err(wrong_world(n.unwrap_or(0)));
                    }
                },
            };
            l.start(
                d,
                (batch.micro as usize, batch.accum),
                (rank, world),
                seed,
                device,
                saved.as_ref(),
            )?;
            Ok(None)
        }
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

/// Restores model and EMA tensors from a checkpoint, checking every name and shape.
fn restore(
    ck: &LoadedCheckpoint<TrainState>,
    model: &RunModel,
    ema: &mut Ema,
    ema_cfg: &EmaConfig,
) -> Result<()> {
    model.load_weights(ck.group("model")?, &ck.dir.join("model.safetensors"))?;
    let updates = ck.state.step / ema_cfg.every.max(1);
    for (k, d) in ema_cfg.decays.iter().enumerate() {
        ema.load(k, ck.group(&ema_group_name(*d))?, updates)?;
    }
    Ok(())
}

/// Restores the power-function EMAs (`phema-<std>` groups) from a checkpoint.
fn restore_power_emas(ck: &LoadedCheckpoint<TrainState>, emas: &mut PowerEmas) -> Result<()> {
    for (k, s) in emas.stds().to_vec().iter().enumerate() {
        emas.load(k, ck.group(&power_ema_group_name(*s))?)?;
    }
    Ok(())
}

/// Source names in `conditioning.source_dropout` and `samples.drop_sources` must be the model's:
/// a misspelt `t5` would otherwise train with the default dropout, or fail at the first grid.
fn check_source_names(cfg: &RunConfig, sources: &[String]) -> Result<()> {
    let named = cfg
        .conditioning
        .source_dropout
        .keys()
        .map(|k| ("conditioning.source_dropout", k))
        .chain(
            cfg.samples
                .drop_sources
                .iter()
                .map(|k| ("samples.drop_sources", k)),
        );
    for (key, name) in named {
        if !sources.contains(name) {
            return Err(TrainError::Invalid(format!(
                "{key} names the conditioning source {name:?}; this run's sources are {sources:?}"
            )));
        }
    }
    Ok(())
}

/// Fixed noise and conditioning of the sample grids: one row per class, or per val caption
/// (the first `text_rows`) for text runs; `per_class` columns.
fn grid_inputs(
    s: &SamplesConfig,
    seed: u64,
    data: &RunData,
    device: Device,
) -> Result<(Tensor, CondInput)> {
    let per = i64::from(s.per_class);
    let (rows, row_cond) = match data.cond_source() {
        CondSource::Labels => {
            let classes = data.classes();
            let labels = Tensor::f_arange(classes, (Kind::Int64, device))?;
            (classes, CondInput::Labels(labels))
        }
        CondSource::Text(_) => {
            let (_, cond) = data.held_out(s.text_rows as usize, device)?;
            (cond.len(), cond)
        }
    };
    let index: Vec<i64> = (0..rows)
        .flat_map(|r| std::iter::repeat_n(r, per as usize))
        .collect();
    let side = data.side();
    let noise = flowscale_core::with_torch_seed((seed ^ 0x9a1d_5eed) as i64 >> 1, || {
        Tensor::f_randn(
            [rows * per, data.channels(), side, side].as_slice(),
            (Kind::Float, device),
        )
    })?;
    Ok((noise, row_cond.select(&index)?))
}
