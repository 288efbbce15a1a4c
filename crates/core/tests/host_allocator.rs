//! Its own test binary without the test harness: the allocator's settings are process-wide,
//! the page-fault counts need no other test allocating beside them, and the blocks must come
//! from the main thread's heap, where the trainer allocates its tensors (the harness would run
//! the test on a thread of its own, whose arena glibc manages differently).

use flowscale_core::host_allocator::{
    current, keep_freed_memory, sets_malloc_tunables, HostAllocator,
};

/// Minor page faults of this process so far.
fn minor_faults() -> i64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) }, 0);
    usage.ru_minflt
}

/// Allocates and touches `blocks` blocks of `size` bytes, then frees them all: a training
/// step's activations in miniature.
fn step(blocks: usize, size: usize) {
    let held: Vec<Vec<u8>> = (0..blocks).map(|_| vec![1u8; size]).collect();
    assert!(held.iter().all(|b| b[size / 2] == 1));
}

fn main() {
    freed_blocks_are_reused_without_faulting_their_pages_in_again();
    println!("test freed_blocks_are_reused_without_faulting_their_pages_in_again ... ok");
}

fn freed_blocks_are_reused_without_faulting_their_pages_in_again() {
    assert_eq!(current(), HostAllocator::Default);
    if std::env::var("GLIBC_TUNABLES").is_ok_and(|t| sets_malloc_tunables(&t)) {
        assert_eq!(keep_freed_memory(), HostAllocator::UserTunables);
        return;
    }
    assert_eq!(keep_freed_memory(), HostAllocator::KeepsFreedMemory);
    assert_eq!(current(), HostAllocator::KeepsFreedMemory);
    // glibc's defaults serve 8 MiB blocks with mmap the first time, then from the heap, and
    // trim them off the heap's top when they are freed, so every round faults all their pages
    // in again; blocks over 32 MiB are mapped and unmapped every time.
    for (blocks, size) in [(12, 8 << 20), (3, 40 << 20)] {
        step(blocks, size);
        let before = minor_faults();
        for _ in 0..4 {
            step(blocks, size);
        }
        let per_round = (minor_faults() - before) / 4;
        let pages = (blocks * size / 4096) as i64;
        assert!(
            per_round < pages / 20,
            "{per_round} minor faults per round of {blocks} x {size} B ({pages} pages): freed \
             memory went back to the system"
        );
    }
}
