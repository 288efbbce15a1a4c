//! `flowscale train`: the loop over data, formulation, backbone and loss, with its hooks.
//!
//! Reading order: this file (the trainer's parts and the loop), [`build`] (construction in
//! named phases: run directory, process group, model, optimiser, resume, data position, logs),
//! [`step`] (one optimiser step), [`hooks`] (logging, validation, sample grids, checkpoints),
//! [`attention_hook`] (attention diagnostics).
//!
//! Determinism: every random draw of the loop comes from one host generator ([`FlowRng`]) whose
//! state is checkpointed (timesteps, the seeds of the noise tensors, CFG dropout), the data order
//! from a [`flowscale_data::BatchSampler`] position, and the initial weights from `run.seed`.
//! So a run resumed from a checkpoint continues bit-identically on CPU.
//!
//! Host synchronisation: the loss, per-t-bin losses and gradient norm accumulate on the device
//! and are read only every `logging.every` steps.

mod attention_hook;
mod build;
mod graphed_step;
mod hooks;
mod optimizer;
mod step;

use crate::batch_plan::BatchPlan;
use crate::checkpoint::CheckpointStore;
use crate::cond_input::CondInput;
use crate::config::RunConfig;
use crate::distributed::DataParallel;
use crate::ema::Ema;
use crate::error::{Result, TrainError};
use crate::metrics::MetricsWriter;
use crate::optim::LrScheduler;
use crate::posthoc::PowerEmas;
use crate::run::{RunData, RunModel};
use crate::run_dir::RunDir;
use crate::state::TrainState;
use crate::tensorboard::EventWriter;
use crate::validation::ValidationSet;
use flowscale_core::FlowRng;
use flowscale_data::BatchSampler;
use flowscale_formulations::{Formulation, Shift};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Instant;
use tch::nn::VarStore;
use tch::{Device, Tensor};

pub use crate::run::{LatentData, PixelData, CONDITIONER_PREFIX};
pub use optimizer::RunOptimizer;
pub use step::Running;

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
    /// Run each micro-batch's forward and backward on the fixed input tensors a CUDA graph
    /// would replay (`train.cuda_graph`), eagerly and on any device. A run with it trains the
    /// same weights as without; it separates a wrong copy of the inputs from a wrong capture.
    pub static_step_inputs: bool,
}

/// Trains the run `config` describes (resuming when asked) and returns the final state.
pub fn train(config: RunConfig, options: TrainOptions) -> Result<TrainState> {
    let mut trainer = Trainer::new(config, options)?;
    trainer.run()?;
    Ok(trainer.state().clone())
}

pub struct Trainer {
    cfg: RunConfig,
    options: TrainOptions,
    dir: RunDir,
    device: Device,
    formulation: Formulation,
    shift: Option<Shift>,
    data: RunData,
    /// The global batch order of pixel runs (latent runs stream from their loader).
    sampler: Option<BatchSampler>,
    model: RunModel,
    /// The trained tensors of `model`, in the fixed order of [`RunModel::params`].
    params: Vec<(String, Tensor)>,
    optimizer: RunOptimizer,
    schedule: LrScheduler,
    ema: Ema,
    /// EDM2's power-function EMAs (`[ema] posthoc`), snapshotted for post-hoc reconstruction.
    power_emas: Option<PowerEmas>,
    store: CheckpointStore,
    /// Data-parallel group when launched with several ranks.
    dp: Option<DataParallel>,
    /// Logs exist on rank 0 only.
    tb: Option<EventWriter>,
    metrics: Option<MetricsWriter>,
    validation: ValidationSet,
    grid_noise: Tensor,
    /// Labels or captions of the grids, one per grid cell.
    grid_cond: CondInput,
    rng: FlowRng,
    state: TrainState,
    /// Training FLOPs per sample at the base side (every batch without buckets).
    flops_per_sample: f64,
    /// Training FLOPs per sample of each aspect bucket's latent `[H, W]` (empty without
    /// buckets): the FLOP count uses each batch's own token count.
    bucket_flops: Vec<([i64; 2], f64)>,
    /// Peak FLOP/s of one device, for MFU (`crate::peak_flops`).
    peak_flops: Option<f64>,
    /// The global batch over ranks and micro-batches.
    batch: BatchPlan,
    /// Dropout probability of each conditioning source, in keep-mask order.
    source_dropout: Vec<f64>,
    running: Running,
    /// The step's forward and backward on static inputs (`train.cuda_graph`, or
    /// [`TrainOptions::static_step_inputs`]); `None`: on the batch's own tensors.
    graphed: Option<graphed_step::GraphedStep>,
    session_start: Instant,
    wall_at_start: f64,
    /// Rank 0's exclusive lock of the run directory.
    _lock: Option<flowscale_core::DirLock>,
}

fn due(step: u64, every: u64, last: bool) -> bool {
    last || (every > 0 && step.is_multiple_of(every))
}

impl Trainer {
    /// Trains until `train.steps` (or `stop_at`), running every hook on its schedule.
    pub fn run(&mut self) -> Result<()> {
        let total = self.cfg.train.steps;
        let stop = self.options.stop_at.unwrap_or(total).min(total);
        let (bar, lines) = self.progress(total)?;
        self.running = Running::new(i64::from(self.cfg.logging.t_bins), self.device)?;
        crate::interrupt::install();
        if self.cfg.validation.at_start && self.state.step == 0 {
            // A new best at step 0 is checkpointed like any other, so the selected step exists.
            if self.run_validation()? {
                self.save_checkpoint()?;
            }
        }
        while self.state.step < stop {
            self.train_step()?;
            let step = self.state.step;
            let last = step == stop;
            bar.set_position(step);
            if due(step, self.cfg.logging.every, last) {
                let msg = self.log_training()?;
                if lines {
                    eprintln!("step {step}/{total} | {msg}");
                }
                bar.set_message(msg);
            }
            if due(step, self.cfg.logging.attention_every, false) {
                self.log_attention()?;
            }
            let improved =
                due(step, self.cfg.validation.every, step == total) && self.run_validation()?;
            // The checkpoint before the grids: a grid that fails (NaN samples from the
            // weights) must not cost the steps since the last checkpoint. A new best
            // validation loss is checkpointed even off the checkpoint schedule: the selected
            // step (the paper's rule, `--best-val-loss`) must exist on disk, and retention
            // keeps it.
            let checkpointed = due(step, self.cfg.checkpoint.every, last) || improved;
            if checkpointed {
                self.save_checkpoint()?;
            }
            if let Some(p) = &self.cfg.ema.posthoc {
                if due(step, p.snapshot_every, step == total) {
                    self.write_posthoc_snapshots()?;
                }
            }
            if due(step, self.cfg.samples.every, step == total) {
                self.run_samples()?;
            }
            if let Some(signal) = self.stop_signal(step)? {
                if !checkpointed {
                    self.save_checkpoint()?;
                }
                self.finish(&bar)?;
                return Err(TrainError::Interrupted {
                    signal,
                    step,
                    checkpoint: self.store.path_of(step),
                });
            }
        }
        self.finish(&bar)
    }

    /// Clears the progress bar and flushes the event file: the end of a session, completed or
    /// interrupted.
    fn finish(&mut self, bar: &ProgressBar) -> Result<()> {
        bar.finish_and_clear();
        match &mut self.tb {
            Some(tb) => tb.flush(),
            None => Ok(()),
        }
    }

    /// Whether SIGINT/SIGTERM asked to stop after `step`. A single process checks after every
    /// step (a host-side flag, no device synchronisation). Data-parallel ranks must stop at the
    /// same step, so they agree at logging points, where the loop synchronises anyway: the
    /// largest signal number any rank received wins.
    fn stop_signal(&self, step: u64) -> Result<Option<i32>> {
        let own = crate::interrupt::requested();
        let Some(d) = &self.dp else {
            return Ok(own);
        };
        if !due(step, self.cfg.logging.every, false) {
            return Ok(None);
        }
        let flag = Tensor::from_slice(&[f64::from(own.unwrap_or(0))]);
        d.max(&flag)?;
        let any = flag.f_double_value(&[0])? as i32;
        Ok((any != 0).then_some(any))
    }

    /// The progress bar on a terminal; on anything else (a log file, a pipe, a Slurm output
    /// file) a plain line per logging point, so the log shows the run is alive (the second
    /// value). Rank 0 alone reports; `quiet` or `progress = false` silence both.
    fn progress(&self, total: u64) -> Result<(ProgressBar, bool)> {
        let wanted = !self.options.quiet
            && self.is_main()
            && self
                .options
                .progress
                .or(self.cfg.logging.progress)
                .unwrap_or(true);
        if !wanted {
            return Ok((ProgressBar::hidden(), false));
        }
        if !std::io::stderr().is_terminal() {
            return Ok((ProgressBar::hidden(), true));
        }
        let b = ProgressBar::new(total).with_position(self.state.step);
        b.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} {msg} eta {eta}",
            )
            .map_err(|e| TrainError::Invalid(format!("progress template: {e}")))?
            .progress_chars("=> "),
        );
        Ok((b, false))
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

    /// The run's model (backbone and conditioner).
    pub fn run_model(&self) -> &RunModel {
        &self.model
    }

    /// The backbone's variables.
    pub fn model_store(&self) -> &VarStore {
        self.model.backbone_store()
    }

    pub fn model(&self) -> &flowscale_models::Backbone {
        self.model.backbone()
    }

    /// `(rank, world size)`: `(0, 1)` without data parallelism.
    /// Bytes of AdamW moments this rank holds (halved on two ranks under ZeRO 1 and 2).
    pub fn optimizer_state_bytes(&self) -> u64 {
        self.optimizer.state_bytes()
    }

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
}
