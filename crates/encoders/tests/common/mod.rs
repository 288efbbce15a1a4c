//! Shared test helpers: fixture and asset paths, tensor comparison.
#![allow(dead_code)]

use flowscale_encoders::weights::{self, StateDict};
use std::path::PathBuf;
use tch::{Device, Kind, Tensor};

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/text")
}

/// The workspace's `.assets/` (filled by `scripts/setup`), or `FLOWSCALE_ASSETS`.
pub fn assets() -> PathBuf {
    let dir = std::env::var_os("FLOWSCALE_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.assets"));
    assert!(
        dir.join("all-minilm-l6-v2/model.safetensors").is_file(),
        "text-encoder assets missing under {}: run scripts/setup",
        dir.display()
    );
    dir
}

/// The committed prompts, one per line.
pub fn prompts() -> Vec<String> {
    let text = std::fs::read_to_string(fixtures().join("prompts.txt")).unwrap();
    text.split('\n')
        .map(str::to_owned)
        .collect::<Vec<_>>()
        .split_last()
        .map(|(_, rest)| rest.to_vec())
        .unwrap()
}

pub fn tokens_json() -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join("tokens.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

pub fn ids_list(v: &serde_json::Value) -> Vec<Vec<i64>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_i64().unwrap())
                .collect()
        })
        .collect()
}

pub fn read(name: &str) -> StateDict {
    weights::read_file(&fixtures().join(name), Kind::Float, Device::Cpu).unwrap()
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size(), "shapes differ");
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
        .abs()
        .max()
        .double_value(&[])
}
