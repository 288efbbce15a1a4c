//! The `.npy` reader over arbitrary bytes. What it accepts must write back and read again to
//! the same bytes (the shard writer's format is what the reader reads).
#![no_main]

use flowscale_data::shards::npy::{from_npy, to_npy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let read = from_npy(data, "fuzz.npy");
    flowscale_fuzz::show("from_npy", &read);
    let Ok(t) = read else {
        return;
    };
    let written = to_npy(&t).expect("an array the reader built can be written");
    let again = from_npy(&written, "rewritten.npy").expect("what we write reads back");
    assert_eq!(again.size(), t.size());
    assert_eq!(to_npy(&again).expect("written again"), written);
});
