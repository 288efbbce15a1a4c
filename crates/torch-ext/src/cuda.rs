//! CUDA devices and the caching allocator's memory statistics (what
//! `torch.cuda.memory_allocated`, `max_memory_allocated`, `memory_reserved` report).

use crate::{ffi, Result};

/// Number of visible CUDA devices; 0 on a machine without a driver or GPU.
pub fn device_count() -> Result<usize> {
    let mut n = 0i64;
    // SAFETY: valid out-pointer.
    unsafe { ffi::check("cuda_device_count", ffi::fx_cuda_device_count(&mut n))? };
    Ok(usize::try_from(n).unwrap_or(0))
}

/// The marketing name of a CUDA device ("NVIDIA H100 80GB HBM3").
pub fn device_name(device: usize) -> Result<String> {
    let index = device as i64;
    ffi::string_out("cuda_device_name", |out| unsafe {
        // SAFETY: `out` is the string out-pointer `string_out` provides.
        ffi::fx_cuda_device_name(index, out)
    })
}

/// Total memory of a CUDA device in bytes, as the driver reports it (`cuDeviceTotalMem`); an
/// error naming the device where it does not exist (always on a machine without CUDA).
pub fn device_total_memory(device: usize) -> Result<u64> {
    let mut bytes = 0i64;
    // SAFETY: valid out-pointer.
    unsafe {
        ffi::check(
            "cuda_device_total_memory",
            ffi::fx_cuda_device_total_memory(device as i64, &mut bytes),
        )?
    };
    Ok(u64::try_from(bytes).unwrap_or(0))
}

/// Memory statistics of one device's caching allocator, in bytes (counts for the last two).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryStats {
    /// Bytes in live tensors (`torch.cuda.memory_allocated`).
    pub allocated: u64,
    /// Peak of `allocated` since the last reset (`torch.cuda.max_memory_allocated`).
    pub peak_allocated: u64,
    /// Bytes held from the driver by the allocator (`torch.cuda.memory_reserved`).
    pub reserved: u64,
    /// Peak of `reserved` since the last reset.
    pub peak_reserved: u64,
    /// Bytes in active blocks (allocated plus not yet reusable).
    pub active: u64,
    /// Allocations that had to free cached blocks and retry.
    pub alloc_retries: u64,
    /// Out-of-memory errors raised.
    pub ooms: u64,
}

/// The caching allocator's statistics for `device`.
pub fn memory_stats(device: usize) -> Result<MemoryStats> {
    let mut raw = [0i64; 7];
    // SAFETY: `raw` has the 7 slots the shim writes.
    unsafe {
        ffi::check(
            "cuda_memory_stats",
            ffi::fx_cuda_memory_stats(device as i64, raw.as_mut_ptr()),
        )?
    };
    let u = |v: i64| u64::try_from(v).unwrap_or(0);
    Ok(MemoryStats {
        allocated: u(raw[0]),
        peak_allocated: u(raw[1]),
        reserved: u(raw[2]),
        peak_reserved: u(raw[3]),
        active: u(raw[4]),
        alloc_retries: u(raw[5]),
        ooms: u(raw[6]),
    })
}

/// Reset the peak counters of `device` to the current values.
pub fn reset_peak_memory_stats(device: usize) -> Result<()> {
    // SAFETY: plain value in.
    unsafe {
        ffi::check(
            "cuda_reset_peak_memory_stats",
            ffi::fx_cuda_reset_peak_memory_stats(device as i64),
        )
    }
}

/// Return cached, unused blocks to the driver (`torch.cuda.empty_cache`). No-op without CUDA.
pub fn empty_cache() -> Result<()> {
    // SAFETY: no arguments.
    unsafe { ffi::check("cuda_empty_cache", ffi::fx_cuda_empty_cache()) }
}
