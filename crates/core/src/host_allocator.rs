//! glibc `malloc` settings for a process that trains with libtorch on the CPU.
//!
//! libtorch's CPU allocator takes every tensor from `malloc`. glibc serves a request above its
//! mmap threshold (128 KiB at start, raised as blocks are freed, at most 32 MiB) with a fresh
//! `mmap` and gives it back with `munmap` when it is freed, and it returns free memory at the top
//! of the heap to the system once more than the trim threshold (twice the mmap threshold) is
//! free. A training step frees and reallocates the same activations every step, so each step's
//! tensors arrive as new pages the kernel has to fault in and zero: 269,000 minor page faults
//! per depth-8 demo step in fp32. With every block served from the heap (no `mmap`) and the heap
//! kept, the same step takes 27,000 and about half the system time; the change in step time was
//! below the noise of the 2-core VM it was measured on (docs/benchmarks.md, "Host allocator"). PyTorch's CUDA caching allocator keeps freed blocks the same way on the GPU, as
//! jemalloc or tcmalloc do when preloaded for CPU training.
//!
//! The price is that memory a step has freed stays with the process instead of going back to
//! the system (up to 2 GiB free at the heap's top, and any free holes below it); the peak, which
//! decides whether a run fits, is unchanged. Allocations glibc cannot take from a heap (blocks
//! over 64 MiB in a thread's arena) still fall back to `mmap`.

/// The settings this process's `malloc` runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostAllocator {
    /// [`keep_freed_memory`] set glibc's parameters.
    KeepsFreedMemory,
    /// The user's `GLIBC_TUNABLES` sets malloc tunables, which win.
    UserTunables,
    /// glibc's defaults: not a glibc target, or `mallopt` refused a setting.
    Default,
}

impl HostAllocator {
    /// How benchmark reports name the setting.
    pub fn name(self) -> &'static str {
        match self {
            HostAllocator::KeepsFreedMemory => "glibc, freed memory kept",
            HostAllocator::UserTunables => "glibc, the user's GLIBC_TUNABLES",
            HostAllocator::Default => "default",
        }
    }
}

/// Free memory at the top of the heap goes back to the system only above this (`mallopt` takes
/// an `int`, so about 2 GiB is the ceiling).
pub const TRIM_THRESHOLD: i32 = i32::MAX;

/// Whether `GLIBC_TUNABLES` (the value of the environment variable) sets a malloc tunable.
pub fn sets_malloc_tunables(glibc_tunables: &str) -> bool {
    glibc_tunables
        .split(':')
        .any(|t| t.trim_start().starts_with("glibc.malloc."))
}

/// Serves every allocation from glibc's heaps (`M_MMAP_MAX` 0) and keeps their free memory
/// (`M_TRIM_THRESHOLD`), so that freed tensors are reused by the next step, unless the user's
/// `GLIBC_TUNABLES` already sets malloc tunables. Call it first thing in `main`, before other
/// threads allocate; later calls return the first call's choice.
pub fn keep_freed_memory() -> HostAllocator {
    *CHOSEN.get_or_init(|| {
        let user = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
        if sets_malloc_tunables(&user) {
            HostAllocator::UserTunables
        } else {
            keep_heap()
        }
    })
}

/// What [`keep_freed_memory`] chose, or [`HostAllocator::Default`] if it was not called (tests,
/// examples), so that benchmark reports say which allocator their figures ran on.
pub fn current() -> HostAllocator {
    CHOSEN.get().copied().unwrap_or(HostAllocator::Default)
}

static CHOSEN: std::sync::OnceLock<HostAllocator> = std::sync::OnceLock::new();

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_heap() -> HostAllocator {
    // SAFETY: mallopt only changes the allocator's parameters; it returns 1 on success.
    let ok = unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    };
    if ok {
        HostAllocator::KeepsFreedMemory
    } else {
        HostAllocator::Default
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_heap() -> HostAllocator {
    HostAllocator::Default
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_malloc_tunables_count_as_the_users_choice() {
        assert!(sets_malloc_tunables("glibc.malloc.mmap_threshold=1048576"));
        assert!(sets_malloc_tunables(
            "glibc.cpu.hwcaps=-AVX2:glibc.malloc.trim_threshold=0"
        ));
        assert!(!sets_malloc_tunables("glibc.cpu.hwcaps=-AVX2"));
        assert!(!sets_malloc_tunables(""));
    }
}
