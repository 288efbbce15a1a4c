//! PyTorch's distributed engine (c10d) from Rust: the `TCPStore` rendezvous, the Gloo process
//! group for CPU tensors, the NCCL process group for CUDA tensors and torchrun's environment
//! contract. The shim (`shim/c10d.cpp`, `shim/c10d_nccl.cpp`) is compiled against the torch
//! wheel's c10d headers, Debian's gloo headers and the wheel's NCCL/CUDA headers; the
//! implementation is the one inside libtorch_cpu / libtorch_cuda that PyTorch's own DDP runs.

mod ffi;
mod launch_env;
mod nccl_support;
mod process_group;
mod store;

pub use launch_env::LaunchEnv;
pub use nccl_support::nccl_support;
pub use process_group::{Backend, ProcessGroup, ReduceOp};
pub use store::TcpStore;

/// `value` as a C string for the shim; a NUL byte inside is an argument error of `call` that
/// names `what` (`host`, `hostname`).
pub(crate) fn c_string(
    call: &'static str,
    what: &str,
    value: &str,
) -> crate::Result<std::ffi::CString> {
    std::ffi::CString::new(value).map_err(|_| crate::TorchExtError::Argument {
        call,
        message: format!("{what} `{value}` contains a NUL byte"),
    })
}
