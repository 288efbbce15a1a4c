//! Whether this build contains the NCCL process group. build.rs compiles `shim/c10d_nccl.cpp`
//! only where libtorch_cuda and the NCCL/CUDA headers exist, and records why not otherwise.

/// `Ok(())` when `ProcessGroup::nccl` is compiled in, else the reason build.rs gave.
pub fn nccl_support() -> Result<(), &'static str> {
    #[cfg(flowscale_nccl)]
    {
        Ok(())
    }
    #[cfg(not(flowscale_nccl))]
    {
        Err(env!("FLOWSCALE_NCCL_MISSING"))
    }
}
