//! c10d's `ProcessGroupGloo`: collectives over CPU tensors between processes, the backend
//! PyTorch's DDP uses on CPU. Every call waits for completion; a peer that died or stopped
//! answering turns into an error after the group's timeout instead of a hang.

use std::ffi::CString;
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

pub struct ProcessGroup {
    ptr: ffi::FxProcessGroup,
    rank: i64,
    size: i64,
}

// SAFETY: the handle owns an intrusive pointer to a ProcessGroupGloo, whose collectives may be
// issued from any thread (one at a time, which `&mut self` is not needed for: Gloo queues them).
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
        let host = CString::new(hostname).map_err(|_| TorchExtError::Argument {
            call: "ProcessGroup::gloo",
            message: format!("hostname `{hostname}` contains a NUL byte"),
        })?;
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
        Ok(Self { ptr, rank, size })
    }

    pub fn rank(&self) -> i64 {
        self.rank
    }

    pub fn size(&self) -> i64 {
        self.size
    }

    fn check_cpu(call: &'static str, tensors: &[&Tensor]) -> Result<()> {
        for t in tensors {
            if t.device() != Device::Cpu || !t.is_contiguous() {
                return Err(TorchExtError::Argument {
                    call,
                    message: format!(
                        "Gloo needs contiguous CPU tensors, got {:?} (contiguous: {})",
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
        Self::check_cpu("all_reduce", &tensors.iter().collect::<Vec<_>>())?;
        let mut ptrs = tensor_ptrs(tensors);
        let op = match op {
            ReduceOp::Sum => 0,
            ReduceOp::Max => 1,
            ReduceOp::Min => 2,
        };
        // SAFETY: the pointers are live tch tensors for the duration of the (blocking) call.
        unsafe {
            crate::ffi::check(
                "all_reduce",
                ffi::fx_all_reduce(self.ptr, ptrs.as_mut_ptr(), ptrs.len(), op),
            )
        }
    }

    /// The mean over ranks, in place (Gloo has no AVG: a sum divided by the world size).
    pub fn all_reduce_mean(&self, tensors: &[Tensor]) -> Result<()> {
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
        Self::check_cpu("broadcast", &tensors.iter().collect::<Vec<_>>())?;
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
        Self::check_cpu("all_gather", &[input])?;
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

    /// Returns when every rank has reached the barrier.
    pub fn barrier(&self) -> Result<()> {
        // SAFETY: the group handle is alive.
        unsafe { crate::ffi::check("barrier", ffi::fx_barrier(self.ptr)) }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from fx_gloo_new and is freed once.
        unsafe { ffi::fx_process_group_free(self.ptr) }
    }
}
