//! PyTorch's distributed engine (c10d) from Rust: the `TCPStore` rendezvous, the Gloo process
//! group for CPU tensors and torchrun's environment contract. The shim (`shim/c10d.cpp`) is
//! compiled against the torch wheel's c10d headers and Debian's gloo headers; the
//! implementation is the one inside libtorch_cpu that PyTorch's own DDP runs.

mod ffi;
mod launch_env;
mod process_group;
mod store;

pub use launch_env::LaunchEnv;
pub use process_group::{ProcessGroup, ReduceOp};
pub use store::TcpStore;
