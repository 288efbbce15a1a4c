#![allow(dead_code)]

use flowscale_models::checkpoint::safetensors_io;
use std::collections::BTreeMap;
use std::path::PathBuf;
use tch::{Device, Kind, Tensor};

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/mmdit")
        .join(name)
}

pub fn read_fixture(name: &str) -> BTreeMap<String, Tensor> {
    safetensors_io::read(&fixture(name), Kind::Float, Device::Cpu)
        .expect("fixture")
        .tensors
        .into_iter()
        .collect()
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}
