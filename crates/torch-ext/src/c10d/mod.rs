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
