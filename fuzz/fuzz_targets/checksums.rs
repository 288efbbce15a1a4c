//! `checksums.json` of a checkpoint folder, read by `checksums::verify` in a folder holding one
//! small file that the input may or may not describe correctly.
#![no_main]

use flowscale_train::checkpoint::checksums;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = flowscale_fuzz::scratch_dir().join("checkpoint");
    std::fs::create_dir_all(&dir).expect("checkpoint folder");
    std::fs::write(dir.join("model.safetensors"), b"weights").expect("a listed file");
    std::fs::write(dir.join(checksums::CHECKSUMS_FILE), data).expect("checksums written");
    flowscale_fuzz::show("checksums::verify", &checksums::verify(&dir));
});
