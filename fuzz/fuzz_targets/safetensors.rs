//! The safetensors reader (memory map, header, dtype conversion) on a file of arbitrary bytes.
#![no_main]

use flowscale_models::checkpoint::safetensors_io;
use libfuzzer_sys::fuzz_target;
use tch::{Device, Kind};

fuzz_target!(|data: &[u8]| {
    let path = flowscale_fuzz::scratch_file("fuzz.safetensors", data);
    let read = safetensors_io::read(&path, Kind::Float, Device::Cpu);
    flowscale_fuzz::show("safetensors_io::read", &read);
});
