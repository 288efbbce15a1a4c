//! c10d's process groups: `ProcessGroupGloo` (CPU tensors) and `ProcessGroupNCCL` (CUDA tensors
//! of one device per process), the backends PyTorch's DDP uses. Both run the same collectives;
//! every call waits for completion, and a peer that died or stopped answering turns into an
//! error after the group's timeout instead of a hang.

use std::time::Duration;

use tch::{Device, Tensor};

use super::ffi;
use super::TcpStore;
use crate::{Result, TorchExtError};

/// Reductions of [`ProcessGroup::all_reduce`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceOp {
    Sum,
    Max,
    Min,
}

/// Which c10d backend a group runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Gloo: contiguous CPU tensors.
    Gloo,
    /// NCCL: contiguous tensors on CUDA device `device` (this process's one GPU).
    Nccl { device: usize },
}

impl Backend {
    /// Where this backend's tensors live.
    pub fn device(self) -> Device {
        match self {
            Backend::Gloo => Device::Cpu,
            Backend::Nccl { device } => Device::Cuda(device),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Gloo => "gloo",
            Backend::Nccl { .. } => "nccl",
        }
    }
}

pub struct ProcessGroup {
    ptr: ffi::FxProcessGroup,
    rank: i64,
    size: i64,
    backend: Backend,
}

// SAFETY: the handle owns an intrusive pointer to a c10d Backend (Gloo or NCCL), whose
// collectives may be issued from any thread (one at a time; both queue them internally).
unsafe impl Send for ProcessGroup {}

fn tensor_ptrs(tensors: &[Tensor]) -> Vec<crate::ffi::FxTensor> {
    tensors
        .iter()
        .map(|t| t.as_ptr() as crate::ffi::FxTensor)
        .collect()
}

impl ProcessGroup {
    /// A Gloo group of `size` ranks over `store`, bound to the interface of `hostname` (the
    /// loopback address for single-node runs). `timeout` bounds every collective.
    pub fn gloo(
        store: &TcpStore,
        rank: i64,
        size: i64,
        hostname: &str,
        timeout: Duration,
    ) -> Result<Self> {
        if !(0..size).contains(&rank) {
            return Err(TorchExtError::Argument {
                call: "ProcessGroup::gloo",
                message: format!("rank {rank} outside a world of size {size}"),
            });
        }
        let host = super::c_string("ProcessGroup::gloo", "hostname", hostname)?;
        let mut ptr: ffi::FxProcessGroup = std::ptr::null_mut();
        // SAFETY: the store handle is alive; the shim writes `ptr` on success only.
        unsafe {
            crate::ffi::check(
                "ProcessGroupGloo",
                ffi::fx_gloo_new(
                    store.ptr,
                    rank,
                    size,
                    host.as_ptr(),
                    timeout.as_millis() as i64,
                    &mut ptr,
                ),
            )?;
        }
        Ok(Self {
            ptr,
            rank,
            size,
            backend: Backend::Gloo,
        })
    }

    /// An NCCL group of `size` ranks over `store`, on CUDA device `device` (one GPU per
    /// process: under torchrun, `LOCAL_RANK`). `timeout` bounds every collective: waits block
    /// the host until the collective finished (`TORCH_NCCL_BLOCKING_WAIT=1`) and a failed one
    /// aborts its communicator without killing the process (`TORCH_NCCL_ASYNC_ERROR_HANDLING=2`);
    /// both are set unless the environment already sets them. Fails with an error naming the
    /// device when CUDA or that device is not available, and naming the reason when this build
    /// has no NCCL support (see [`super::nccl_support`]).
    pub fn nccl(
        store: &TcpStore,
        rank: i64,
        size: i64,
        device: usize,
        timeout: Duration,
    ) -> Result<Self> {
        let bad = |message: String| TorchExtError::Argument {
            call: "ProcessGroup::nccl",
            message,
        };
        if !(0..size).contains(&rank) {
            return Err(bad(format!("rank {rank} outside a world of size {size}")));
        }
        let visible = crate::cuda::device_count()?;
        if device >= visible {
            return Err(bad(format!(
                "CUDA device cuda:{device} is not available: {visible} CUDA device(s) visible \
                 (NCCL needs one GPU per process; check the driver and CUDA_VISIBLE_DEVICES)"
            )));
        }
        super::nccl_support()
            .map_err(|why| bad(format!("this build has no NCCL process group: {why}")))?;
        Self::nccl_unchecked(store, rank, size, device, timeout)
    }

    #[cfg(flowscale_nccl)]
    fn nccl_unchecked(
        store: &TcpStore,
        rank: i64,
        size: i64,
        device: usize,
        timeout: Duration,
    ) -> Result<Self> {
        let mut ptr: ffi::FxProcessGroup = std::ptr::null_mut();
        // SAFETY: the store handle is alive; the shim writes `ptr` on success only.
        unsafe {
            crate::ffi::check(
                "ProcessGroupNCCL",
                ffi::fx_nccl_new(
                    store.ptr,
                    rank,
                    size,
                    device as i64,
                    timeout.as_millis() as i64,
                    &mut ptr,
                ),
            )?;
        }
        Ok(Self {
            ptr,
            rank,
            size,
            backend: Backend::Nccl { device },
        })
    }

    #[cfg(not(flowscale_nccl))]
    fn nccl_unchecked(_: &TcpStore, _: i64, _: i64, _: usize, _: Duration) -> Result<Self> {
        unreachable!("ProcessGroup::nccl checks nccl_support() first")
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn rank(&self) -> i64 {
        self.rank
    }

    pub fn size(&self) -> i64 {
        self.size
    }

    /// The group's backend takes contiguous tensors on its device only (NCCL: this process's
    /// GPU); anything else is an error here rather than a copy the caller did not ask for.
    fn check_tensors(&self, call: &'static str, tensors: &[&Tensor]) -> Result<()> {
        let want = self.backend.device();
        for t in tensors {
            if t.device() != want || !t.is_contiguous() {
                return Err(TorchExtError::Argument {
                    call,
                    message: format!(
                        "{} needs contiguous tensors on {want:?}, got {:?} (contiguous: {})",
                        self.backend.name(),
                        t.device(),
                        t.is_contiguous()
                    ),
                });
            }
        }
        Ok(())
    }

    /// Reduces each tensor in place across all ranks.
    pub fn all_reduce(&self, tensors: &[Tensor], op: ReduceOp) -> Result<()> {
        let op = match op {
            ReduceOp::Sum => 0,
            ReduceOp::Max => 1,
            ReduceOp::Min => 2,
        };
        self.all_reduce_raw("all_reduce", tensors, op)
    }

    /// The shim's code for `c10d::ReduceOp::AVG` (`reduce_op` in shim/c10d.cpp), which only
    /// NCCL implements, so it is not a public [`ReduceOp`].
    const AVG: i32 = 3;

    fn all_reduce_raw(&self, call: &'static str, tensors: &[Tensor], op: i32) -> Result<()> {
        self.check_tensors(call, &tensors.iter().collect::<Vec<_>>())?;
        let mut ptrs = tensor_ptrs(tensors);
        // SAFETY: the pointers are live tch tensors for the duration of the (blocking) call.
        unsafe {
            crate::ffi::check(
                call,
                ffi::fx_all_reduce(self.ptr, ptrs.as_mut_ptr(), ptrs.len(), op),
            )
        }
    }

    /// The mean over ranks, in place: NCCL's native AVG (one pass, in the tensor's own dtype);
    /// Gloo has none, so a sum divided by the world size.
    pub fn all_reduce_mean(&self, tensors: &[Tensor]) -> Result<()> {
        if let Backend::Nccl { .. } = self.backend {
            return self.all_reduce_raw("all_reduce_mean", tensors, Self::AVG);
        }
        self.all_reduce(tensors, ReduceOp::Sum)?;
        for t in tensors {
            let _ = t
                .shallow_clone()
                .f_div_scalar_(self.size as f64)
                .map_err(|e| TorchExtError::Torch {
                    call: "all_reduce_mean",
                    message: e.to_string(),
                })?;
        }
        Ok(())
    }

    /// Overwrites each tensor with rank `root`'s values.
    pub fn broadcast(&self, tensors: &[Tensor], root: i64) -> Result<()> {
        self.check_tensors("broadcast", &tensors.iter().collect::<Vec<_>>())?;
        if !(0..self.size).contains(&root) {
            return Err(TorchExtError::Argument {
                call: "broadcast",
                message: format!("root {root} outside a world of size {}", self.size),
            });
        }
        let mut ptrs = tensor_ptrs(tensors);
        // SAFETY: as in all_reduce.
        unsafe {
            crate::ffi::check(
                "broadcast",
                ffi::fx_broadcast(self.ptr, ptrs.as_mut_ptr(), ptrs.len(), root),
            )
        }
    }

    /// Every rank's `input`, in rank order.
    pub fn all_gather(&self, input: &Tensor) -> Result<Vec<Tensor>> {
        self.check_tensors("all_gather", &[input])?;
        let outputs: Vec<Tensor> = (0..self.size)
            .map(|_| input.f_empty_like())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| TorchExtError::Torch {
                call: "all_gather",
                message: e.to_string(),
            })?;
        let mut ptrs = tensor_ptrs(&outputs);
        // SAFETY: as in all_reduce.
        unsafe {
            crate::ffi::check(
                "all_gather",
                ffi::fx_all_gather(
                    self.ptr,
                    input.as_ptr() as crate::ffi::FxTensor,
                    ptrs.as_mut_ptr(),
                    ptrs.len(),
                ),
            )?;
        }
        Ok(outputs)
    }

    /// The sum over ranks of `input` (`size * n` elements, contiguous, flat), of which this
    /// rank receives its chunk of `n` (elements `rank * n ..`): a reduce-scatter, the collective
    /// a sharded optimiser reduces gradients with (half the traffic of an all-reduce).
    pub fn reduce_scatter_sum(&self, input: &Tensor) -> Result<Tensor> {
        const CALL: &str = "reduce_scatter_sum";
        self.check_tensors(CALL, &[input])?;
        let total = input.numel() as i64;
        if input.dim() != 1 || total % self.size != 0 {
            return Err(TorchExtError::Argument {
                call: CALL,
                message: format!(
                    "needs a flat tensor whose length divides by the world size {}, got shape {:?}",
                    self.size,
                    input.size()
                ),
            });
        }
        self.flat_collective(CALL, input, total / self.size, |out, inp| {
            // SAFETY: both tensors are live for the duration of the (blocking) call.
            unsafe { ffi::fx_reduce_scatter(self.ptr, out, inp, 0) }
        })
    }

    /// Every rank's flat `input` (same length on every rank), concatenated in rank order into
    /// one flat tensor: the all-gather of a sharded optimiser's updated weights.
    pub fn all_gather_flat(&self, input: &Tensor) -> Result<Tensor> {
        const CALL: &str = "all_gather_flat";
        self.check_tensors(CALL, &[input])?;
        if input.dim() != 1 {
            return Err(TorchExtError::Argument {
                call: CALL,
                message: format!("needs a flat tensor, got shape {:?}", input.size()),
            });
        }
        self.flat_collective(CALL, input, input.numel() as i64 * self.size, |out, inp| {
            // SAFETY: both tensors are live for the duration of the (blocking) call.
            unsafe { ffi::fx_all_gather_flat(self.ptr, out, inp) }
        })
    }

    /// A flat output of `len` elements like `input`, filled by the shim call `run(output,
    /// input)`, whose error string becomes the error of `call`.
    fn flat_collective(
        &self,
        call: &'static str,
        input: &Tensor,
        len: i64,
        run: impl FnOnce(crate::ffi::FxTensor, crate::ffi::FxTensor) -> *mut std::ffi::c_char,
    ) -> Result<Tensor> {
        let output = Tensor::f_empty([len], (input.kind(), input.device())).map_err(|e| {
            TorchExtError::Torch {
                call,
                message: e.to_string(),
            }
        })?;
        let err = run(
            output.as_ptr() as crate::ffi::FxTensor,
            input.as_ptr() as crate::ffi::FxTensor,
        );
        // SAFETY: `err` is the shim's returned error string (or NULL), taken once.
        unsafe { crate::ffi::check(call, err)? };
        Ok(output)
    }

    /// Returns when every rank has reached the barrier.
    pub fn barrier(&self) -> Result<()> {
        // SAFETY: the group handle is alive.
        unsafe { crate::ffi::check("barrier", ffi::fx_barrier(self.ptr)) }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from fx_gloo_new or fx_nccl_new and is freed once.
        unsafe { ffi::fx_process_group_free(self.ptr) }
    }
}
