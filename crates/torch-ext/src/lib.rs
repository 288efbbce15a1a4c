//! `flowscale-torch-ext`: the libtorch functionality flowscale needs and tch 0.24 does not expose,
//! through a small C++ shim (`shim/torch_ext.cpp`) compiled against the same libtorch.
//!
//! * [`autocast`]: choose the autocast dtype (bf16 on CUDA) and run closures under autocast on CPU
//!   or CUDA.
//! * [`fused_adamw`]: ATen's fused AdamW kernel (`at::_fused_adamw_`) over lists of tensors.
//! * [`foreach`]: multi-tensor ops (`_foreach_lerp_`, the EMA update as one op).
//! * [`grad`]: dropping a tensor's gradient (PyTorch's `set_to_none`).
//! * [`cpu`]: whether the CPU has bf16 matrix instructions (AMX-BF16, AVX512-BF16).
//! * [`cuda`]: device names and the CUDA caching allocator's memory statistics.
//! * [`cuda_graph`]: capturing a fixed-shape training step as a CUDA graph and replaying it.
//! * [`numerics`]: deterministic algorithms and TF32 switches.
//! * [`c10d`]: PyTorch's distributed engine: TCPStore rendezvous, Gloo and NCCL collectives, the
//!   torchrun environment contract.
//! * [`build_info`]: the libtorch version compiled against and the library actually loaded.

pub mod autocast;
pub mod build_info;
pub mod c10d;
pub mod cpu;
pub mod cuda;
pub mod cuda_graph;
mod error;
mod ffi;
pub mod foreach;
pub mod fused_adamw;
pub mod grad;
mod kind;
pub mod numerics;

pub use error::TorchExtError;

pub type Result<T> = std::result::Result<T, TorchExtError>;
