//! Raw declarations of the shim (see `shim/torch_ext.h`) and the conversion of its error strings.

use std::ffi::{c_char, c_int, c_void, CStr};

use crate::{Result, TorchExtError};

pub type FxTensor = *mut c_void;

extern "C" {
    pub fn fx_free_string(s: *mut c_char);
    pub fn fx_torch_version(out: *mut *mut c_char) -> *mut c_char;
    pub fn fx_libtorch_path(out: *mut *mut c_char) -> *mut c_char;
    pub fn fx_torch_build_config(out: *mut *mut c_char) -> *mut c_char;

    pub fn fx_autocast_set_dtype(device_type: c_int, dtype: c_int) -> *mut c_char;
    pub fn fx_autocast_get_dtype(device_type: c_int, out: *mut c_int) -> *mut c_char;
    pub fn fx_autocast_set_enabled(device_type: c_int, enabled: c_int) -> *mut c_char;
    pub fn fx_autocast_is_enabled(device_type: c_int, out: *mut c_int) -> *mut c_char;
    pub fn fx_autocast_increment_nesting(out: *mut i64) -> *mut c_char;
    pub fn fx_autocast_decrement_nesting(out: *mut i64) -> *mut c_char;
    pub fn fx_autocast_clear_cache() -> *mut c_char;

    pub fn fx_clear_grad(tensor: FxTensor) -> *mut c_char;
    pub fn fx_foreach_lerp_scalar(
        selves: *mut FxTensor,
        ends: *mut FxTensor,
        n: usize,
        weight: f64,
    ) -> *mut c_char;

    #[allow(clippy::too_many_arguments)]
    pub fn fx_fused_adamw(
        params: *mut FxTensor,
        grads: *mut FxTensor,
        exp_avgs: *mut FxTensor,
        exp_avg_sqs: *mut FxTensor,
        max_exp_avg_sqs: *mut FxTensor,
        state_steps: *mut FxTensor,
        n: usize,
        lr: f64,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
        eps: f64,
        amsgrad: c_int,
        maximize: c_int,
    ) -> *mut c_char;

    pub fn fx_cuda_device_count(out: *mut i64) -> *mut c_char;
    pub fn fx_cuda_device_name(device: i64, out: *mut *mut c_char) -> *mut c_char;
    pub fn fx_cuda_device_total_memory(device: i64, out: *mut i64) -> *mut c_char;
    pub fn fx_cuda_memory_stats(device: i64, out: *mut i64) -> *mut c_char;
    pub fn fx_cuda_reset_peak_memory_stats(device: i64) -> *mut c_char;
    pub fn fx_cuda_empty_cache() -> *mut c_char;

    #[cfg(flowscale_cuda_graph)]
    pub fn fx_cuda_graph_new(device: i64, out: *mut *mut c_void) -> *mut c_char;
    #[cfg(flowscale_cuda_graph)]
    pub fn fx_cuda_graph_enter_stream(g: *mut c_void) -> *mut c_char;
    #[cfg(flowscale_cuda_graph)]
    pub fn fx_cuda_graph_exit_stream(g: *mut c_void) -> *mut c_char;
    #[cfg(flowscale_cuda_graph)]
    pub fn fx_cuda_graph_capture_begin(g: *mut c_void) -> *mut c_char;
    #[cfg(flowscale_cuda_graph)]
    pub fn fx_cuda_graph_capture_end(g: *mut c_void) -> *mut c_char;
    #[cfg(flowscale_cuda_graph)]
    pub fn fx_cuda_graph_replay(g: *mut c_void) -> *mut c_char;
    #[cfg(flowscale_cuda_graph)]
    pub fn fx_cuda_graph_free(g: *mut c_void) -> *mut c_char;

    pub fn fx_set_deterministic_algorithms(enabled: c_int, warn_only: c_int) -> *mut c_char;
    pub fn fx_deterministic_algorithms(out: *mut c_int) -> *mut c_char;
    pub fn fx_set_allow_tf32(cublas: c_int, cudnn: c_int) -> *mut c_char;
    pub fn fx_allow_tf32(cublas: *mut c_int, cudnn: *mut c_int) -> *mut c_char;
}

/// Take ownership of a heap string the shim returned.
///
/// # Safety
/// `s` must be NULL or a string allocated by the shim and not freed yet.
unsafe fn take_string(s: *mut c_char) -> Option<String> {
    if s.is_null() {
        return None;
    }
    let out = CStr::from_ptr(s).to_string_lossy().into_owned();
    fx_free_string(s);
    Some(out)
}

/// Turn a shim return value (NULL or an error message) into a `Result`.
///
/// # Safety
/// `err` must come straight from a shim call.
pub unsafe fn check(call: &'static str, err: *mut c_char) -> Result<()> {
    match take_string(err) {
        None => Ok(()),
        Some(message) => Err(TorchExtError::Torch { call, message }),
    }
}

/// Run a shim call that writes a string to its out-parameter.
pub fn string_out(
    call: &'static str,
    f: impl FnOnce(*mut *mut c_char) -> *mut c_char,
) -> Result<String> {
    let mut out: *mut c_char = std::ptr::null_mut();
    // SAFETY: the shim writes a heap string into `out` only on success and returns NULL then.
    unsafe {
        check(call, f(&mut out))?;
        Ok(take_string(out).unwrap_or_default())
    }
}
