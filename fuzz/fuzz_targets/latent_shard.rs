//! The latent shard reader (tar entries grouped into samples, `.npy` tensors, labels, captions)
//! on a file holding arbitrary bytes.
#![no_main]

use flowscale_data::shards::read_latent_shard;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = flowscale_fuzz::scratch_file("fuzz-shard.tar", data);
    flowscale_fuzz::show("read_latent_shard", &read_latent_shard(&path));
});
