//! Data parallelism over c10d (torchrun's contract; Gloo on the CPU, NCCL on GPUs).
//!
//! Every rank draws the same global batch (the sampler, timesteps, noise and CFG dropout come
//! from generators seeded identically on every rank) and trains on its contiguous share of it;
//! gradients are averaged in flattened buckets after backward. A run with world size W and
//! per-rank batch B therefore follows the 1-process run with batch W x B up to the summation
//! order of the all-reduce. Rank 0 alone writes logs, samples and checkpoints.

mod select;
pub mod zero;

pub use select::{rank_device, select_backend};

use crate::config::GradReduceDtype;
use crate::error::{Result, TrainError};
use flowscale_torch_ext::c10d::{Backend, LaunchEnv, ProcessGroup, ReduceOp, TcpStore};
use std::time::Duration;
use tch::{Kind, Tensor};

/// Gradients are reduced in buckets of at most this many elements (25 Mi elements = 100 MiB in
/// fp32; PyTorch DDP's default bucket is 25 MiB: larger buckets mean fewer collectives, and
/// without overlap with backward there is nothing to gain from small ones).
const BUCKET_ELEMENTS: i64 = 25 * 1024 * 1024;

pub struct DataParallel {
    group: ProcessGroup,
    /// The dtype gradient buckets are all-reduced in.
    grad_kind: Kind,
    /// Wall time spent averaging gradients (flatten, all-reduce, copy back) since the start:
    /// what data parallelism adds to a step. Exact on the CPU, where every op is synchronous;
    /// on a GPU it also includes waiting for the backward kernels still queued.
    grad_sync: Duration,
}

fn c10d_error(what: &str, e: impl std::fmt::Display) -> TrainError {
    TrainError::Invalid(format!(
        "data parallel {what}: {e} (a peer rank exited or stopped answering within \
         run.dist_timeout_s; its own log has the cause)"
    ))
}

impl DataParallel {
    /// Joins the process group `env` describes (rank 0 hosts the rendezvous store), on the
    /// backend `backend`.
    pub fn join(
        env: &LaunchEnv,
        backend: Backend,
        grad_dtype: GradReduceDtype,
        timeout: Duration,
    ) -> Result<Self> {
        let store = TcpStore::connect(
            &env.master_addr,
            env.master_port,
            env.world_size,
            env.rank == 0,
            timeout,
        )
        .map_err(|e| c10d_error("rendezvous", e))?;
        let group = match backend {
            // Bind to the interface the rendezvous address is reached through.
            Backend::Gloo => {
                ProcessGroup::gloo(&store, env.rank, env.world_size, &env.master_addr, timeout)
            }
            Backend::Nccl { device } => {
                ProcessGroup::nccl(&store, env.rank, env.world_size, device, timeout)
            }
        }
        .map_err(|e| c10d_error("process group", e))?;
        Ok(Self {
            group,
            grad_kind: match grad_dtype {
                GradReduceDtype::Fp32 => Kind::Float,
                GradReduceDtype::Bf16 => Kind::BFloat16,
            },
            grad_sync: Duration::ZERO,
        })
    }

    /// A group of one process over a loopback store (on a port the OS picks): the collectives
    /// of a data-parallel step with no peer to wait for, so a benchmark can time what the
    /// process group itself costs.
    pub fn solo(backend: Backend, grad_dtype: GradReduceDtype, timeout: Duration) -> Result<Self> {
        let env = LaunchEnv {
            rank: 0,
            world_size: 1,
            local_rank: 0,
            local_world_size: 1,
            master_addr: "127.0.0.1".into(),
            master_port: 0,
        };
        Self::join(&env, backend, grad_dtype, timeout)
    }

    pub fn rank(&self) -> usize {
        self.group.rank() as usize
    }

    pub fn world_size(&self) -> usize {
        self.group.size() as usize
    }

    /// `t` on the group's device, contiguous: `t` itself when it already is. Host-side values
    /// (validation sums, gathered JSON) go through the GPU under NCCL, which takes nothing else.
    fn on_group_device(&self, t: &Tensor) -> Result<Tensor> {
        Ok(t.f_to_device(self.group.backend().device())?
            .f_contiguous()?)
    }

    /// Overwrites every tensor with rank 0's values.
    pub fn broadcast(&self, tensors: &[Tensor]) -> Result<()> {
        let _guard = tch::no_grad_guard();
        self.group
            .broadcast(tensors, 0)
            .map_err(|e| c10d_error("broadcast", e))
    }

    /// Sums `t` (any shape, any device) over ranks, in place.
    pub fn sum(&self, t: &Tensor) -> Result<()> {
        self.reduce(t, ReduceOp::Sum)
    }

    /// The element-wise maximum of `t` over ranks, in place.
    pub fn max(&self, t: &Tensor) -> Result<()> {
        self.reduce(t, ReduceOp::Max)
    }

    fn reduce(&self, t: &Tensor, op: ReduceOp) -> Result<()> {
        let staged = self.on_group_device(t)?;
        self.group
            .all_reduce(&[staged.shallow_clone()], op)
            .map_err(|e| c10d_error("all-reduce", e))?;
        // `on_group_device` hands back `t` itself when no copy was needed.
        if staged.device() != t.device() || staged.data_ptr() != t.data_ptr() {
            t.shallow_clone().f_copy_(&staged)?;
        }
        Ok(())
    }

    /// The dtype gradients are reduced in (`run.dist_grad_dtype`).
    pub fn grad_kind(&self) -> Kind {
        self.grad_kind
    }

    /// Returns when every rank has reached this point.
    pub fn barrier(&self) -> Result<()> {
        self.group.barrier().map_err(|e| c10d_error("barrier", e))
    }

    /// The mean over ranks of the flat `input` (`world * n` elements), of which this rank gets
    /// its chunk of `n`: the reduce-scatter of ZeRO-2's gradients. Timed with the gradient sync.
    pub fn reduce_scatter_mean(&self, input: &Tensor) -> Result<Tensor> {
        let staged = self.on_group_device(input)?;
        let mut chunk = self
            .group
            .reduce_scatter_sum(&staged)
            .map_err(|e| c10d_error("gradient reduce-scatter", e))?;
        let _ = chunk.f_div_scalar_(self.world_size() as f64)?;
        Ok(chunk.f_to_device(input.device())?)
    }

    /// Every rank's flat `input`, concatenated in rank order: the all-gather of the updated
    /// weight shards.
    pub fn all_gather_flat(&self, input: &Tensor) -> Result<Tensor> {
        let staged = self.on_group_device(input)?;
        Ok(self
            .group
            .all_gather_flat(&staged)
            .map_err(|e| c10d_error("weight all-gather", e))?
            .f_to_device(input.device())?)
    }

    /// Averages the gradients of `params` over ranks: flattened into buckets of the configured
    /// dtype on the gradients' own device (one collective per bucket rather than per tensor;
    /// with NCCL nothing leaves the GPU), reduced, and copied back.
    pub fn average_gradients(&mut self, params: &[Tensor]) -> Result<()> {
        let start = std::time::Instant::now();
        let result = self.average_gradients_untimed(params);
        self.grad_sync += start.elapsed();
        result
    }

    /// Adds `d` to the gradient-sync time (ZeRO-2's reduce-scatter, timed by its caller).
    pub fn add_gradient_sync_time(&mut self, d: Duration) {
        self.grad_sync += d;
    }

    /// Total wall time of [`DataParallel::average_gradients`] so far.
    pub fn gradient_sync_time(&self) -> Duration {
        self.grad_sync
    }

    fn average_gradients_untimed(&self, params: &[Tensor]) -> Result<()> {
        let _guard = tch::no_grad_guard();
        let grads: Vec<Tensor> = params
            .iter()
            .map(|p| p.grad())
            .filter(|g| g.defined())
            .collect();
        let mut start = 0;
        while start < grads.len() {
            let mut end = start;
            let mut elements = 0;
            while end < grads.len()
                && (end == start || elements + grads[end].numel() as i64 <= BUCKET_ELEMENTS)
            {
                elements += grads[end].numel() as i64;
                end += 1;
            }
            let bucket = &grads[start..end];
            let flat = Tensor::f_cat(
                &bucket
                    .iter()
                    .map(|g| g.f_reshape([-1]).and_then(|g| g.f_to_kind(self.grad_kind)))
                    .collect::<std::result::Result<Vec<_>, _>>()?,
                0,
            )?;
            self.group
                .all_reduce_mean(&[flat.shallow_clone()])
                .map_err(|e| c10d_error("gradient all-reduce", e))?;
            let mut offset = 0;
            for g in bucket {
                let n = g.numel() as i64;
                let part = flat.f_narrow(0, offset, n)?.f_view_as(g)?;
                g.shallow_clone().f_copy_(&part)?;
                offset += n;
            }
            start = end;
        }
        Ok(())
    }
}

impl DataParallel {
    /// Every rank's `value`, by rank (a collective: every rank must call it). Serialised as
    /// JSON bytes, padded to the longest, gathered as uint8 tensors.
    pub fn gather_json<T: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        value: &T,
    ) -> Result<Vec<T>> {
        let bytes = serde_json::to_vec(value)
            .map_err(|e| TrainError::Invalid(format!("cannot serialise for gathering: {e}")))?;
        let longest = self.on_group_device(&Tensor::f_from_slice(&[bytes.len() as i64])?)?;
        self.group
            .all_reduce(&[longest.shallow_clone()], ReduceOp::Max)
            .map_err(|e| c10d_error("all-reduce", e))?;
        let longest = longest.f_int64_value(&[0])? as usize;
        let mut padded = bytes;
        padded.resize(longest, b' ');
        let parts = self
            .group
            .all_gather(&self.on_group_device(&Tensor::f_from_slice(&padded)?)?)
            .map_err(|e| c10d_error("all-gather", e))?;
        parts
            .iter()
            .enumerate()
            .map(|(r, t)| {
                let b = Vec::<u8>::try_from(t)?;
                serde_json::from_slice(&b).map_err(|e| {
                    TrainError::Invalid(format!("rank {r} sent an unreadable value: {e}"))
                })
            })
            .collect()
    }
}

/// The contiguous share `rank` of `world` takes from `n` items (the first `n % world` ranks
/// take one more).
pub fn shard(n: usize, rank: usize, world: usize) -> std::ops::Range<usize> {
    let base = n / world;
    let extra = n % world;
    let start = rank * base + rank.min(extra);
    start..start + base + usize::from(rank < extra)
}

#[cfg(test)]
mod tests {
    use super::shard;

    #[test]
    fn shards_cover_everything_once() {
        for n in [0, 1, 7, 12] {
            for world in 1..5 {
                let parts: Vec<_> = (0..world).map(|r| shard(n, r, world)).collect();
                assert_eq!(parts[0].start, 0);
                assert_eq!(parts[world - 1].end, n);
                for w in parts.windows(2) {
                    assert_eq!(w[0].end, w[1].start);
                    assert!(w[0].len() >= w[1].len() && w[0].len() - w[1].len() <= 1);
                }
            }
        }
    }
}
