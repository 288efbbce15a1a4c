//! The data-parallel settings of `[run]`: which c10d backend carries the collectives and the
//! dtype gradients travel in.

use serde::{Deserialize, Serialize};

/// `run.dist_backend`: the process group of a data-parallel run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DistBackend {
    /// NCCL when the run's device is CUDA, Gloo on the CPU (what torch.distributed picks).
    #[default]
    Auto,
    /// Gloo: CPU tensors only.
    Gloo,
    /// NCCL: one CUDA device per process.
    Nccl,
}

/// `run.dist_grad_dtype`: the dtype of the flattened gradient buckets that are all-reduced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GradReduceDtype {
    /// float32 (the default): the average is as exact as the gradients.
    Fp32,
    /// bfloat16: half the bytes per collective; each rank's gradient is rounded to 8 mantissa
    /// bits before averaging (what DDP's bf16 compression hook does).
    Bf16,
}
