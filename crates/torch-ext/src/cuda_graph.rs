//! CUDA graphs (`at::cuda::CUDAGraph`, what `torch.cuda.CUDAGraph` wraps): a fixed-shape step
//! (forward, backward, optimizer update) captured once and replayed with one launch, which
//! removes the per-kernel launch cost that dominates small models on a GPU.
//!
//! The contract is PyTorch's: everything the step reads must live in tensors allocated before
//! the capture (copy each new batch into them before [`CudaGraph::replay`]), the step must not
//! read values back to the host (no `.item()`, no data-dependent control flow), gradients must
//! be zeroed in place rather than dropped, and the optimizer's step counters must live on the
//! device (flowscale's fused AdamW keeps them there). [`CudaGraph::capture`] warms the step up
//! on a side stream first (lazy initialisation: cuBLAS workspaces, optimizer state), as
//! `torch.cuda.make_graphed_callables` does, and disables autocast's cast cache while on it.
//!
//! Compiled only where the CUDA runtime headers are (the same condition as the NCCL group); in
//! a build without them, and on a machine without the device, [`CudaGraph::capture`] is an
//! error saying which.

#[cfg(flowscale_cuda_graph)]
use crate::ffi;
use crate::{Result, TorchExtError};
use std::ffi::c_void;
use std::fmt::Display;

/// A captured CUDA graph; freed on drop.
#[derive(Debug)]
// Without CUDA graphs in the build no value is ever made.
#[cfg_attr(not(flowscale_cuda_graph), allow(dead_code))]
pub struct CudaGraph {
    handle: *mut c_void,
    device: usize,
}

#[cfg(flowscale_cuda_graph)]
fn call(name: &'static str, f: impl FnOnce() -> *mut std::ffi::c_char) -> Result<()> {
    // SAFETY: `f` is one shim call on a live handle; its return value is the shim's error string.
    unsafe { ffi::check(name, f()) }
}

impl CudaGraph {
    /// Runs `step` `warmup` times (at least once) on a side stream of `cuda:device`, then
    /// captures one more call of it. The warm-up calls really run (they change the model like
    /// any step); the captured call does not run until [`CudaGraph::replay`].
    pub fn capture<E: Display>(
        device: usize,
        warmup: usize,
        mut step: impl FnMut() -> std::result::Result<(), E>,
    ) -> Result<Self> {
        #[cfg(not(flowscale_cuda_graph))]
        {
            let _ = (device, warmup, &mut step);
            Err(TorchExtError::Argument {
                call: "cuda_graph_capture",
                message: format!(
                    "CUDA graphs are not compiled into this build ({})",
                    env!("FLOWSCALE_CUDA_GRAPH_MISSING")
                ),
            })
        }
        #[cfg(flowscale_cuda_graph)]
        {
            let mut handle: *mut c_void = std::ptr::null_mut();
            // SAFETY: valid out-pointer.
            call("cuda_graph_new", || unsafe {
                ffi::fx_cuda_graph_new(device as i64, &mut handle)
            })?;
            let graph = CudaGraph { handle, device };
            let h = graph.handle;
            // SAFETY (all calls below): `h` is the live handle just created.
            call("cuda_graph_enter_stream", || unsafe {
                ffi::fx_cuda_graph_enter_stream(h)
            })?;
            let captured = (|| -> Result<()> {
                for i in 0..warmup.max(1) {
                    step().map_err(|e| step_error(format!("warm-up step {i}: {e}")))?;
                }
                call("cuda_graph_capture_begin", || unsafe {
                    ffi::fx_cuda_graph_capture_begin(h)
                })?;
                let stepped = step().map_err(|e| step_error(format!("captured step: {e}")));
                // End the capture whatever the step did, so the stream leaves capture mode.
                let ended = call("cuda_graph_capture_end", || unsafe {
                    ffi::fx_cuda_graph_capture_end(h)
                });
                stepped.and(ended)
            })();
            let exited = call("cuda_graph_exit_stream", || unsafe {
                ffi::fx_cuda_graph_exit_stream(h)
            });
            captured.and(exited)?;
            Ok(graph)
        }
    }

    /// Runs the captured step once more (on the current stream's device, asynchronously like
    /// any kernel launch).
    pub fn replay(&self) -> Result<()> {
        #[cfg(flowscale_cuda_graph)]
        {
            let h = self.handle;
            // SAFETY: live handle.
            call("cuda_graph_replay", || unsafe {
                ffi::fx_cuda_graph_replay(h)
            })
        }
        #[cfg(not(flowscale_cuda_graph))]
        unreachable!("a CudaGraph exists only in builds with CUDA graphs")
    }

    /// The device the graph was captured on.
    pub fn device(&self) -> usize {
        self.device
    }
}

#[cfg_attr(not(flowscale_cuda_graph), allow(dead_code))]
fn step_error(message: String) -> TorchExtError {
    TorchExtError::Argument {
        call: "cuda_graph_capture",
        message,
    }
}

impl Drop for CudaGraph {
    fn drop(&mut self) {
        #[cfg(flowscale_cuda_graph)]
        {
            let h = self.handle;
            // SAFETY: live handle, freed once. A failure here cannot be reported from drop.
            let _ = call("cuda_graph_free", || unsafe { ffi::fx_cuda_graph_free(h) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without a CUDA device (this machine, CI) capturing is an error that says why, and the
    /// step never runs.
    #[test]
    fn capture_without_a_device_is_a_named_error() {
        if crate::cuda::device_count().unwrap_or(0) > 0 {
            return;
        }
        let mut ran = false;
        let e = CudaGraph::capture(0, 1, || -> std::result::Result<(), String> {
            ran = true;
            Ok(())
        })
        .unwrap_err()
        .to_string();
        assert!(!ran);
        assert!(
            e.contains("CUDA graphs need a CUDA device") || e.contains("not compiled"),
            "{e}"
        );
    }
}
