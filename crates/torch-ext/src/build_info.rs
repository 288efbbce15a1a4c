//! What libtorch this binary was compiled against and which one it loaded.

use crate::{ffi, Result};

/// `TORCH_VERSION` of the headers the shim was compiled against ("2.11.0").
pub fn torch_version() -> Result<String> {
    // SAFETY: `out` is the string out-pointer `string_out` provides.
    ffi::string_out("torch_version", |out| unsafe { ffi::fx_torch_version(out) })
}

/// Path of the `libtorch_cpu.so` loaded into this process.
pub fn libtorch_path() -> Result<String> {
    // SAFETY: as above.
    ffi::string_out("libtorch_path", |out| unsafe { ffi::fx_libtorch_path(out) })
}

/// `at::show_config()`: compiler, CUDA/cuDNN versions, CPU capability, build flags.
pub fn build_config() -> Result<String> {
    // SAFETY: as above.
    ffi::string_out("torch_build_config", |out| unsafe {
        ffi::fx_torch_build_config(out)
    })
}
