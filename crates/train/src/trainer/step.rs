//! One optimiser step: micro-batches (data, timesteps, noise, CFG dropout), forward, loss,
//! backward, gradient averaging across ranks, clipping, the update, the EMAs (classic and power-function); and the refresh of
//! the resumable state before a checkpoint.

use super::graphed_step::{forward_backward, MicroInputs};
use super::Trainer;
use crate::cond_input::CondInput;
use crate::config::NonFinitePolicy;
use crate::error::Result;
use crate::run::{LatentPosition, RunData, CONDITIONER_PREFIX};
use flowscale_core::FlowRng;
use flowscale_formulations::TrainingBatch;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Device-side running sums between two log points (no host synchronisation per step).
pub struct Running {
    pub loss_sum: Tensor,
    pub samples: u64,
    pub bin_sum: Tensor,
    pub bin_count: Tensor,
    pub grad_norm_sum: Tensor,
    pub nonfinite: Tensor,
    pub steps: u64,
    /// Training FLOPs of these steps (all ranks), by each batch's own latent size.
    pub flops: f64,
    pub since: Instant,
    /// This rank's realised conditioning dropout: samples, and how many dropped each source
    /// and every source at once (host counts: the masks are drawn on the host).
    pub cond_samples: u64,
    pub cond_dropped: Vec<u64>,
    pub cond_all_dropped: u64,
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
            flops: 0.0,
            since: Instant::now(),
            cond_samples: 0,
            cond_dropped: Vec::new(),
            cond_all_dropped: 0,
        })
    }
}

/// This rank's part of one micro-batch.
struct MicroBatch {
    batch: TrainingBatch,
    cond: CondInput,
    /// One keep mask per conditioning source (CFG dropout).
    keep: Vec<Tensor>,
    /// Samples all ranks process together.
    global: i64,
}

/// CFG dropout masks, one `[B]` float mask per conditioning source, each sample dropping
/// source `i` with probability `p[i]` independently, drawn from `rng` (source by source, sample
/// by sample). Also returns the host masks, for the realised rates.
pub fn keep_masks(
    rng: &mut FlowRng,
    p: &[f64],
    batch: i64,
    device: Device,
) -> Result<(Vec<Tensor>, Vec<Vec<bool>>)> {
    let host: Vec<Vec<bool>> = p
        .iter()
        .map(|&p| (0..batch).map(|_| rng.uniform() >= p).collect())
        .collect();
    let masks = host
        .iter()
        .map(|keep| {
            let f: Vec<f32> = keep.iter().map(|&k| if k { 1.0 } else { 0.0 }).collect();
            Ok(Tensor::f_from_slice(&f)?.f_to_device(device)?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((masks, host))
}

impl Running {
    /// Adds the host masks of [`keep_masks`] (or this rank's rows of them) to the counts.
    fn count_dropout(&mut self, host: &[Vec<bool>], rows: std::ops::Range<usize>) {
        if host.is_empty() {
            return;
        }
        self.cond_dropped.resize(host.len(), 0);
        for i in rows {
            let mut all = true;
            for (s, keep) in host.iter().enumerate() {
                if !keep[i] {
                    self.cond_dropped[s] += 1;
                } else {
                    all = false;
                }
            }
            self.cond_all_dropped += u64::from(all);
            self.cond_samples += 1;
        }
    }
}

impl Trainer {
    /// This rank's micro-batches of one optimiser step ([`crate::batch_plan::BatchPlan`]).
    fn micro_batches(&mut self, rank: usize, world: usize) -> Result<Vec<MicroBatch>> {
        let device = self.device;
        let (shift, formulation) = (self.shift, self.formulation);
        let plan = self.batch;
        let p = &self.source_dropout;
        match &mut self.data {
            RunData::Pixels(data) => {
                // Every rank draws the same global batch (data, CFG dropout, timesteps, noise)
                // and trains on its share, in micro-batches: the step is the same on any number
                // of ranks and with any micro-batch size, up to summation order.
                let idx = self.sampler.as_mut().expect("set in new").next_indices()?;
                let (x0, labels) = data.batch(&idx, device)?;
                let rng = &mut self.rng;
                let (keep, host) = keep_masks(rng, p, x0.size()[0], device)?;
                let batch = formulation.training_batch(&x0, rng, shift)?;
                let cond = CondInput::Labels(labels);
                let (share, micro) = (plan.per_rank as usize, plan.micro as usize);
                (0..plan.accum as usize)
                    .map(|m| {
                        let first = rank * share + m * micro;
                        self.running.count_dropout(&host, first..first + micro);
                        Ok(MicroBatch {
                            batch: batch.rows(first, micro)?,
                            cond: cond.narrow(first as i64, micro as i64)?,
                            keep: keep
                                .iter()
                                .map(|k| k.f_narrow(0, first as i64, micro as i64))
                                .collect::<std::result::Result<Vec<_>, _>>()?,
                            global: (micro * world) as i64,
                        })
                    })
                    .collect()
            }
            RunData::Latents(l) => {
                // Each rank has its own samples, so its own draws: a generator seeded from the
                // shared one (which advances identically on every rank) and the rank, per
                // micro-batch of the loader.
                (0..plan.accum)
                    .map(|_| {
                        let mut local = FlowRng::new(
                            self.rng.next_u64() ^ (rank as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                        );
                        let (x0, cond) = l.next(&mut local, device)?;
                        let b = x0.size()[0];
                        let (keep, host) = keep_masks(&mut local, p, b, device)?;
                        self.running.count_dropout(&host, 0..b as usize);
                        let batch = formulation.training_batch(&x0, &mut local, shift)?;
                        Ok(MicroBatch {
                            batch,
                            cond,
                            keep,
                            global: b * world as i64,
                        })
                    })
                    .collect()
            }
        }
    }

    /// One optimiser step (with gradient accumulation). Returns nothing; statistics stay on the
    /// device in `self.running`.
    pub(super) fn train_step(&mut self) -> Result<()> {
        let accum = self.batch.accum;
        let bins = i64::from(self.cfg.logging.t_bins);
        let step_loss = Tensor::f_zeros([] as [i64; 0], (Kind::Double, self.device))?;
        let (rank, world) = self.rank_world();
        // Samples per latent `[H, W]` this step (one shape without buckets).
        let mut shapes: Vec<([i64; 2], u64)> = Vec::new();
        for micro in self.micro_batches(rank, world)? {
            let MicroBatch {
                batch,
                cond,
                keep,
                global,
            } = micro;
            let size = batch.net_input.size();
            let hw = [size[2], size[3]];
            match shapes.iter_mut().find(|(s, _)| *s == hw) {
                Some((_, n)) => *n += global as u64,
                None => shapes.push((hw, global as u64)),
            }
            let inputs = MicroInputs::of(&batch, &cond, &keep);
            let checkpointing = self.cfg.train.activation_checkpointing;
            let per = match &mut self.graphed {
                Some(g) => g.run(&self.model, checkpointing, accum, &inputs)?,
                None => forward_backward(&self.model, checkpointing, accum, &inputs)?,
            };
            let per = per.f_to_kind(Kind::Double)?;
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
        let norm =
            self.optimizer
                .reduce_and_clip(&tensors, self.dp.as_mut(), self.cfg.optim.grad_clip)?;
        if let Some(d) = &self.dp {
            // The global loss, so every rank takes the same non-finite decision.
            d.sum(&step_loss)?;
        }
        if let Some(n) = norm {
            let _ = self
                .running
                .grad_norm_sum
                .f_add_(&n.f_to_kind(Kind::Double)?)?;
        }
        let finite = step_loss.f_isfinite()?;
        let lr = self.schedule.lr(self.state.step);
        let skip = self.cfg.logging.nonfinite == NonFinitePolicy::Skip
            // The one per-step host read, only when skipping is configured: the optimiser must
            // know before it updates the weights.
            && finite.int64_value(&[]) == 0;
        if skip {
            self.state.skipped_steps += 1;
        } else {
            self.optimizer.step(lr, self.dp.as_ref())?;
        }
        self.optimizer.zero_grad()?;
        self.conditioner_zero_grad();
        let _ = self.running.loss_sum.f_add_(&step_loss)?;
        let _ = self
            .running
            .nonfinite
            .f_add_(&finite.f_logical_not()?.f_to_kind(Kind::Double)?)?;
        self.state.step += 1;
        self.state.lr = lr;
        let flops = self.step_flops(&shapes)?;
        self.state.train_flops += flops;
        self.running.flops += flops;
        self.ema.after_step(self.state.step, &self.params)?;
        if let Some(p) = &mut self.power_emas {
            p.after_step(self.state.step, &self.params)?;
        }
        self.running.steps += 1;
        Ok(())
    }

    /// The training FLOPs of a step's samples by latent shape: the base-side figure times the
    /// global batch without buckets (as before buckets existed), each bucket's own per-sample
    /// figure with them.
    fn step_flops(&self, shapes: &[([i64; 2], u64)]) -> Result<f64> {
        if self.bucket_flops.is_empty() {
            return Ok(self.flops_per_sample * self.batch.global as f64);
        }
        shapes
            .iter()
            .map(|(hw, n)| {
                let per = self
                    .bucket_flops
                    .iter()
                    .find(|(s, _)| s == hw)
                    .map(|(_, f)| *f)
                    .ok_or_else(|| {
                        crate::error::TrainError::Invalid(format!(
                            "a batch of {}x{} latents matches no aspect bucket",
                            hw[0], hw[1]
                        ))
                    })?;
                Ok(per * *n as f64)
            })
            .sum()
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
        match &self.data {
            RunData::Pixels(_) => {
                let pos = self.sampler.as_ref().expect("set in new").position();
                self.state.data_epoch = pos.epoch;
                self.state.data_index = pos.index;
            }
            RunData::Latents(l) => match l.position().expect("started in new") {
                LatentPosition::Plain(own) => {
                    let all = match &self.dp {
                        Some(d) => d.gather_json(&own)?,
                        None => vec![own],
                    };
                    self.state.data_epoch = all[0].epoch;
                    self.state.data_index = all[0].batches as usize;
                    self.state.data_positions = Some(all);
                }
                LatentPosition::Bucketed(own) => {
                    let all = match &self.dp {
                        Some(d) => d.gather_json(&own)?,
                        None => vec![own],
                    };
                    // Epochs are per bucket; the batches drawn stand for the position.
                    self.state.data_epoch = 0;
                    self.state.data_index = all[0].batches as usize;
                    self.state.data_bucket_positions = Some(all);
                }
            },
        }
        self.state.wall_time_s = self.wall_at_start + self.session_start.elapsed().as_secs_f64();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `k` successes in `n` draws are within 5 standard deviations of probability `p`.
    fn binomial_ok(k: u64, n: u64, p: f64) -> bool {
        let sd = (n as f64 * p * (1.0 - p)).sqrt();
        (k as f64 - n as f64 * p).abs() <= 5.0 * sd
    }

    #[test]
    fn realised_dropout_matches_the_per_source_probabilities() {
        // The paper's 46.4% per text encoder, and one source kept more often, over 10k samples.
        let p = [0.464, 0.464, 0.2];
        let mut rng = FlowRng::new(5);
        let mut running = Running::new(1, Device::Cpu).unwrap();
        for _ in 0..10 {
            let (masks, host) = keep_masks(&mut rng, &p, 1000, Device::Cpu).unwrap();
            running.count_dropout(&host, 0..1000);
            // The device masks are the host draws: 0 where dropped.
            for (m, h) in masks.iter().zip(&host) {
                let m: Vec<f32> = Vec::try_from(m).unwrap();
                assert!(m.iter().zip(h).all(|(v, k)| (*v == 1.0) == *k));
            }
        }
        let n = running.cond_samples;
        assert_eq!(n, 10_000);
        for (s, &q) in p.iter().enumerate() {
            let k = running.cond_dropped[s];
            assert!(binomial_ok(k, n, q), "source {s}: {k}/{n} dropped, p = {q}");
        }
        // Independent sources: all three dropped with the product (about 4.3%).
        let all = p.iter().product::<f64>();
        let k = running.cond_all_dropped;
        assert!(binomial_ok(k, n, all), "all dropped {k}/{n}, p = {all}");
        // A rate far off is caught by the same check (the test can fail).
        assert!(!binomial_ok(k, n, 0.1));
    }
}
