//! This process's resident memory from `/proc/self/status` (Linux): the current size and the
//! high-water mark, which writing `5` to `/proc/self/clear_refs` resets to the current size;
//! and the bytes `malloc` has handed out ([`malloc_in_use`]). The CPU counterparts of CUDA's
//! peak-allocated and allocated counters for memory benchmarks and the memory plan.

use std::path::Path;

use crate::{Result, TrainError};

const STATUS: &str = "/proc/self/status";

/// `VmRSS` and `VmHWM` in bytes.
pub fn resident_and_peak() -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(STATUS).map_err(|e| TrainError::io(STATUS, e))?;
    let field = |name: &str| -> Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .ok_or_else(|| TrainError::corrupt(STATUS, format!("no {name} line")))?;
        let kib: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .map_err(|_| TrainError::corrupt(STATUS, format!("cannot read `{line}`")))?;
        Ok(kib * 1024)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// Resets the high-water mark to the current resident size, after handing the heap's free
/// pages back to the system: the `flowscale` binary keeps freed memory for reuse
/// (`flowscale_core::host_allocator`), and pages still resident from earlier work would
/// otherwise absorb part of the next peak.
pub fn reset_peak() -> Result<()> {
    // SAFETY: malloc_trim only releases free memory; its result says whether any was released.
    unsafe { libc::malloc_trim(0) };
    let path = Path::new("/proc/self/clear_refs");
    std::fs::write(path, "5").map_err(|e| TrainError::io(path, e))
}

/// The bytes `malloc` has handed out and not taken back, over every arena: heap chunks in use
/// plus separately mapped chunks (glibc's `mallinfo2`: `uordblks + hblkhd`). Unlike resident
/// memory it does not depend on whether freed memory went back to the system or is reused from
/// the heap, so the difference before and after a forward is exactly what the forward still
/// holds (libtorch's CPU allocator allocates through `malloc`).
pub fn malloc_in_use() -> u64 {
    // SAFETY: mallinfo2 only reads the allocator's counters.
    let info = unsafe { libc::mallinfo2() };
    (info.uordblks + info.hblkhd) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_follows_a_touched_allocation_and_resets() {
        reset_peak().unwrap();
        let (rss, peak) = resident_and_peak().unwrap();
        assert!(peak >= rss && rss > 0);
        // Touch 64 MiB, so it is resident, then free it.
        let block = vec![1u8; 64 << 20];
        let (_, during) = resident_and_peak().unwrap();
        assert!(
            during >= rss + (60 << 20),
            "peak {during} after touching 64 MiB from {rss}"
        );
        drop(block);
        reset_peak().unwrap();
        let (after_rss, after_peak) = resident_and_peak().unwrap();
        assert!(
            after_peak < during,
            "reset left the peak at {after_peak} (was {during})"
        );
        assert!(after_peak >= after_rss);
    }
}
