//! AdamW with its moments sharded over the data-parallel ranks (ZeRO stage 1), and the
//! gradients too (stage 2).
//!
//! Each AdamW group (decay / no decay, [`crate::optim::groups`]) is laid out flat and cut into
//! equal shards ([`ShardLayout`]). A rank keeps the two moments of its shard only, and updates
//! only the parameter elements of its shard, in place through views of the parameters, with the
//! same fused kernel and per-parameter step counters as the replicated [`crate::optim::AdamW`]:
//! AdamW is element-wise, so given the same averaged gradients each element receives exactly
//! the replicated update. The updated shards are then all-gathered into every rank's full
//! weights (ZeRO-1/2 keep full fp32 weights on each rank for the forward pass).
//!
//! Gradients: under stage 1 the trainer all-reduces them as in plain data parallelism and each
//! rank reads its shard's part. Under stage 2 [`ShardedAdamW::reduce_gradients`] reduce-scatters
//! the flattened gradients into the shards (half an all-reduce's traffic) and frees the full
//! gradient tensors, so between the reduction and the next backward a rank holds only its
//! shard. The reduction runs after the whole backward: libtorch's C++ API offers no per-tensor
//! post-accumulate hook through tch, so it is not bucketed into backward, and the full
//! gradients do exist at the end of each backward.

use super::layout::{Piece, ShardLayout};
use super::stage::ZeroStage;
use crate::distributed::DataParallel;
use crate::error::{Result, TrainError};
use crate::optim::{by_decay, restore_named, AdamWConfig};
use flowscale_torch_ext::fused_adamw::{fused_adamw_step, AdamWTensors};
use flowscale_torch_ext::grad::clear_grad;
use std::collections::HashMap;
use tch::{Kind, Tensor};

struct ShardGroup {
    decay: bool,
    names: Vec<String>,
    params: Vec<Tensor>,
    layout: ShardLayout,
    pieces: Vec<Piece>,
    /// The moments of this rank's shard, flat (padding included).
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    /// One step counter per piece (the fused kernel's bias correction), as the replicated
    /// optimiser keeps one per parameter.
    steps: Vec<Tensor>,
    /// Stage 2: this rank's shard of the averaged gradients, between reduction and update,
    /// and which parameters had a gradient.
    reduced: Option<(Tensor, Vec<bool>)>,
}

pub struct ShardedAdamW {
    config: AdamWConfig,
    stage: ZeroStage,
    rank: usize,
    world: usize,
    groups: Vec<ShardGroup>,
}

impl std::fmt::Debug for ShardedAdamW {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardedAdamW")
            .field("stage", &self.stage)
            .field("rank", &self.rank)
            .field("world", &self.world)
            .finish()
    }
}

/// The parameter as a flat view of its own storage (updates through it land in the weights).
fn flat_view(p: &Tensor) -> Result<Tensor> {
    Ok(p.f_view([-1])?)
}

impl ShardedAdamW {
    /// Zero moments for this rank's shard of `params` (name, tensor) under `stage` (1 or 2).
    pub fn new(
        params: &[(String, Tensor)],
        config: AdamWConfig,
        stage: ZeroStage,
        rank: usize,
        world: usize,
    ) -> Result<Self> {
        if stage.is_replicated() {
            return Err(TrainError::Invalid(
                "ShardedAdamW needs train.zero_stage 1 or 2".into(),
            ));
        }
        let mut groups = vec![];
        for (decay, chosen) in by_decay(params) {
            let (kind, device) = match chosen.first() {
                Some((_, p)) => (p.kind(), p.device()),
                None => (Kind::Float, tch::Device::Cpu),
            };
            for (name, p) in &chosen {
                if p.kind() != kind || p.device() != device || !p.is_contiguous() {
                    return Err(TrainError::Invalid(format!(
                        "train.zero_stage: parameter {name} is {:?} on {:?} (contiguous: {}); \
                         a shard needs every parameter of its group contiguous, {kind:?}, on \
                         {device:?}",
                        p.kind(),
                        p.device(),
                        p.is_contiguous()
                    )));
                }
            }
            let numels: Vec<i64> = chosen.iter().map(|(_, p)| p.numel() as i64).collect();
            let layout = ShardLayout::new(&numels, rank, world);
            let pieces = layout.pieces();
            let zeros = || Tensor::f_zeros([layout.shard_len()], (kind, device));
            groups.push(ShardGroup {
                decay,
                names: chosen.iter().map(|(n, _)| n.clone()).collect(),
                params: chosen.iter().map(|(_, p)| p.shallow_clone()).collect(),
                exp_avg: zeros()?,
                exp_avg_sq: zeros()?,
                steps: pieces
                    .iter()
                    .map(|_| Tensor::f_zeros([] as [i64; 0], (Kind::Float, device)))
                    .collect::<std::result::Result<_, _>>()?,
                layout,
                pieces,
                reduced: None,
            });
        }
        Ok(Self {
            config,
            stage,
            rank,
            world,
            groups,
        })
    }

    pub fn stage(&self) -> ZeroStage {
        self.stage
    }

    /// Bytes of AdamW state this rank holds (both moments of its shards).
    pub fn state_bytes(&self) -> u64 {
        self.groups
            .iter()
            .map(|g| 2 * g.layout.shard_len() as u64 * g.exp_avg.kind().elt_size_in_bytes() as u64)
            .sum()
    }

    /// Stage 2: reduce-scatters every group's flattened gradients (a missing gradient counts
    /// as zeros) into this rank's shard, averaged over the ranks, and frees the full
    /// gradients. `dp` is `None` for a world of one. Stage 1 leaves the gradients to the
    /// trainer's all-reduce.
    pub fn reduce_gradients(&mut self, dp: Option<&DataParallel>) -> Result<()> {
        if self.stage != ZeroStage::Gradients {
            return Ok(());
        }
        let _guard = tch::no_grad_guard();
        for g in &mut self.groups {
            let has: Vec<bool> = g.params.iter().map(|p| p.grad().defined()).collect();
            let shard = if has.iter().any(|&h| h) {
                let kind = dp.map_or(g.exp_avg.kind(), DataParallel::grad_kind);
                let mut parts = Vec::with_capacity(g.params.len() + 1);
                for (p, &h) in g.params.iter().zip(&has) {
                    parts.push(if h {
                        p.grad().f_reshape([-1])?.f_to_kind(kind)?
                    } else {
                        Tensor::f_zeros([p.numel() as i64], (kind, p.device()))?
                    });
                }
                let pad = g.layout.padded() - g.layout.total();
                if pad > 0 {
                    parts.push(Tensor::f_zeros([pad], (kind, g.exp_avg.device()))?);
                }
                let flat = Tensor::f_cat(&parts, 0)?;
                drop(parts);
                let shard = match dp {
                    Some(d) => d.reduce_scatter_mean(&flat)?,
                    None => flat,
                };
                Some(shard.f_to_kind(g.exp_avg.kind())?)
            } else {
                None
            };
            for p in &g.params {
                clear_grad(p)?;
            }
            g.reduced = shard.map(|s| (s, has));
        }
        Ok(())
    }

    /// Stage 2: the global L2 norm of the reduced gradients (a float32 0-d tensor), from the sums
    /// of squares of every rank's shard, all-reduced. `None` when no shard holds a gradient
    /// (always under stage 1, whose full gradients the trainer clips as plain data parallelism
    /// does).
    pub fn grad_norm(&self, dp: Option<&DataParallel>) -> Result<Option<Tensor>> {
        let shards: Vec<&Tensor> = self
            .groups
            .iter()
            .filter_map(|g| g.reduced.as_ref().map(|(s, _)| s))
            .collect();
        if shards.is_empty() {
            return Ok(None);
        }
        let mut squares = Tensor::f_zeros([1], (Kind::Double, shards[0].device()))?;
        for s in shards {
            squares =
                squares.f_add(&s.f_to_kind(Kind::Double)?.f_square()?.f_sum(Kind::Double)?)?;
        }
        if let Some(d) = dp {
            d.sum(&squares)?;
        }
        Ok(Some(
            squares
                .f_sqrt()?
                .f_to_kind(Kind::Float)?
                .f_view([] as [i64; 0])?,
        ))
    }

    /// Stage 2: scales the reduced gradients so their global norm is at most `max_norm` (what
    /// `torch.nn.utils.clip_grad_norm_` computes); returns the norm before clipping.
    pub fn clip_grad_norm(
        &mut self,
        max_norm: f64,
        dp: Option<&DataParallel>,
    ) -> Result<Option<Tensor>> {
        let Some(norm) = self.grad_norm(dp)? else {
            return Ok(None);
        };
        let scale = crate::optim::clip_scale(&norm, max_norm)?;
        let _guard = tch::no_grad_guard();
        for g in &mut self.groups {
            if let Some((s, _)) = &mut g.reduced {
                let _ = s.f_mul_(&scale.f_to_kind(s.kind())?)?;
            }
        }
        Ok(Some(norm))
    }

    /// One AdamW step at learning rate `lr` on this rank's shard of every parameter that has a
    /// gradient, then the all-gather of the updated shards into every rank's weights.
    pub fn step(&mut self, lr: f64, dp: Option<&DataParallel>) -> Result<()> {
        let _guard = tch::no_grad_guard();
        for g in &mut self.groups {
            let (mut ps, mut gs, mut ms, mut vs, mut ss) = (vec![], vec![], vec![], vec![], vec![]);
            for (k, piece) in g.pieces.iter().enumerate() {
                let p = &g.params[piece.param];
                let grad = match (&g.reduced, self.stage) {
                    (Some((shard, has)), ZeroStage::Gradients) if has[piece.param] => {
                        shard.f_narrow(0, piece.shard_offset, piece.len)?
                    }
                    (_, ZeroStage::Optimizer) if p.grad().defined() => {
                        flat_view(&p.grad())?.f_narrow(0, piece.param_offset, piece.len)?
                    }
                    _ => continue,
                };
                let _ = g.steps[k].f_add_scalar_(1.0)?;
                ps.push(flat_view(p)?.f_narrow(0, piece.param_offset, piece.len)?);
                gs.push(grad);
                ms.push(g.exp_avg.f_narrow(0, piece.shard_offset, piece.len)?);
                vs.push(g.exp_avg_sq.f_narrow(0, piece.shard_offset, piece.len)?);
                ss.push(g.steps[k].shallow_clone());
            }
            let hp = self.config.kernel_params(lr, g.decay);
            fused_adamw_step(
                &AdamWTensors {
                    params: &ps,
                    grads: &gs,
                    exp_avgs: &ms,
                    exp_avg_sqs: &vs,
                    max_exp_avg_sqs: &[],
                    state_steps: &ss,
                },
                &hp,
            )?;
            if let Some(d) = dp {
                gather_weights(g, d)?;
            }
        }
        Ok(())
    }

    /// Clears every gradient (stage 2: the reduced shards; the full ones are already freed).
    pub fn zero_grad(&mut self) -> Result<()> {
        for g in &mut self.groups {
            g.reduced = None;
            for p in &mut g.params {
                if self.stage == ZeroStage::Gradients {
                    clear_grad(p)?;
                } else {
                    p.zero_grad();
                }
            }
        }
        Ok(())
    }

    /// This rank's state as named tensors: `exp_avg.<group>` and `exp_avg_sq.<group>` (the
    /// flat shards; group `decay` or `no_decay`) and `step.<param>` for each parameter with a
    /// piece in the shard.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![];
        for g in &self.groups {
            let group = if g.decay { "decay" } else { "no_decay" };
            out.push((format!("exp_avg.{group}"), g.exp_avg.shallow_clone()));
            out.push((format!("exp_avg_sq.{group}"), g.exp_avg_sq.shallow_clone()));
            for (piece, step) in g.pieces.iter().zip(&g.steps) {
                out.push((
                    format!("step.{}", g.names[piece.param]),
                    step.shallow_clone(),
                ));
            }
        }
        out
    }

    /// Restores [`ShardedAdamW::state`] written by the same rank of the same world size; every
    /// key must be present with its shape, and no other key. (The per-piece step counters are
    /// the whole step state.)
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        restore_named(
            self.state(),
            state,
            &format!(
                "rank {} of {}: the sharded optimiser state does not match this model's shard",
                self.rank, self.world
            ),
        )
    }
}

/// Every rank's updated shard of `g`, gathered and written into the full weights.
fn gather_weights(g: &ShardGroup, d: &DataParallel) -> Result<()> {
    let own = Tensor::f_zeros(
        [g.layout.shard_len()],
        (g.exp_avg.kind(), g.exp_avg.device()),
    )?;
    for piece in &g.pieces {
        own.f_narrow(0, piece.shard_offset, piece.len)?.f_copy_(
            &flat_view(&g.params[piece.param])?.f_narrow(0, piece.param_offset, piece.len)?,
        )?;
    }
    let full = d.all_gather_flat(&own)?;
    for (i, p) in g.params.iter().enumerate() {
        let span = g.layout.span(i);
        flat_view(p)?.f_copy_(&full.f_narrow(0, span.start, span.end - span.start)?)?;
    }
    Ok(())
}
