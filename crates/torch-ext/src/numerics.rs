//! Process-wide numerics switches: deterministic algorithms and TF32 matmuls/convolutions.

use std::ffi::c_int;

use crate::{ffi, Result};

/// `torch.use_deterministic_algorithms(enabled, warn_only=warn_only)`.
///
/// Deterministic cuBLAS also needs `CUBLAS_WORKSPACE_CONFIG=:4096:8` in the environment before
/// the first CUDA call; this sets it when enabling and the variable is not already set.
pub fn set_deterministic_algorithms(enabled: bool, warn_only: bool) -> Result<()> {
    if enabled && std::env::var_os("CUBLAS_WORKSPACE_CONFIG").is_none() {
        std::env::set_var("CUBLAS_WORKSPACE_CONFIG", ":4096:8");
    }
    // SAFETY: plain values in.
    unsafe {
        ffi::check(
            "set_deterministic_algorithms",
            ffi::fx_set_deterministic_algorithms(c_int::from(enabled), c_int::from(warn_only)),
        )
    }
}

/// Whether deterministic algorithms are enforced.
pub fn deterministic_algorithms() -> Result<bool> {
    let mut out: c_int = 0;
    // SAFETY: valid out-pointer.
    unsafe {
        ffi::check(
            "deterministic_algorithms",
            ffi::fx_deterministic_algorithms(&mut out),
        )?
    };
    Ok(out != 0)
}

/// Which float32 operations may run in TF32 on Ampere and newer GPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tf32 {
    /// `torch.backends.cuda.matmul.allow_tf32`.
    pub matmul: bool,
    /// `torch.backends.cudnn.allow_tf32`.
    pub cudnn: bool,
}

pub fn set_allow_tf32(tf32: Tf32) -> Result<()> {
    // SAFETY: plain values in.
    unsafe {
        ffi::check(
            "set_allow_tf32",
            ffi::fx_set_allow_tf32(c_int::from(tf32.matmul), c_int::from(tf32.cudnn)),
        )
    }
}

pub fn allow_tf32() -> Result<Tf32> {
    let (mut matmul, mut cudnn): (c_int, c_int) = (0, 0);
    // SAFETY: valid out-pointers.
    unsafe { ffi::check("allow_tf32", ffi::fx_allow_tf32(&mut matmul, &mut cudnn))? };
    Ok(Tf32 {
        matmul: matmul != 0,
        cudnn: cudnn != 0,
    })
}
