//! Activation memory measured on the CPU: one test, so no other test allocates in this process
//! while the allocator's counters are read.

use flowscale_models::{Checkpointing, MmditConfig};
use flowscale_train::config::Precision;
use flowscale_train::host_memory::malloc_in_use;
use flowscale_train::memory::ActivationProfile;
use tch::Device;

#[test]
fn measured_activations_are_linear_in_batch_and_checkpointing_keeps_only_streams() {
    // The counter the CPU measurement reads follows live allocations, small (heap) and large
    // (own mapping) alike, and drops when they are freed.
    let before = malloc_in_use();
    let small: Vec<Vec<u8>> = (0..256).map(|_| vec![1u8; 4096]).collect();
    let large = vec![1u8; 8 << 20];
    let during = malloc_in_use();
    let want = 256 * 4096 + (8 << 20);
    assert!(
        during >= before + want && during < before + want + (1 << 20),
        "in use {during} from {before}, allocated {want}"
    );
    drop((small, large));
    assert!(malloc_in_use() < during - want / 2);

    let config = MmditConfig::from_depth(4); // hidden 256
    let (side, context) = (32, 154);
    let p =
        ActivationProfile::measure(&config, side, context, Precision::Fp32, Device::Cpu).unwrap();
    for plan in &p.held {
        for blocks in plan {
            assert!(blocks[0] > 0 && blocks[1] > blocks[0], "{:?}", p.held);
        }
    }
    let ratio = p.batch_ratio();
    assert!((1.6..=2.4).contains(&ratio), "batch 2 / batch 1 = {ratio}");
    // A kept block holds many hidden-sized tensors; a checkpointed one its two input streams,
    // (image tokens + context tokens) x hidden fp32 per sample.
    let streams = ((side / 2) * (side / 2) + context) * config.hidden() * 4;
    let kept = p.block(2);
    let checkpointed = p.checkpointed_block(2);
    assert!(kept > 5 * 2 * streams as u64, "kept block {kept} B");
    let want = 2.0 * streams as f64;
    assert!(
        (0.5 * want..=2.0 * want).contains(&(checkpointed as f64)),
        "checkpointed block {checkpointed} B, streams {want} B"
    );
    let none = p.bytes(24, 8, Checkpointing::None).unwrap();
    let blocks = p.bytes(24, 8, Checkpointing::Blocks).unwrap();
    let every4 = p.bytes(24, 8, Checkpointing::EveryN(4)).unwrap();
    assert!(blocks.total() < every4.total() && every4.total() < none.total());
}
