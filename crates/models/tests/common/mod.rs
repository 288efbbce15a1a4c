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

/// A very small MMDiT (2 heads of 4, 2 latent channels, 6-d context, 5-d pooled) for tests that
/// run many forward and backward passes.
pub fn small_config(depth: i64, qk_norm: bool) -> flowscale_models::MmditConfig {
    flowscale_models::MmditConfig {
        sample_size: 8,
        patch_size: 2,
        in_channels: 2,
        num_layers: depth,
        attention_head_dim: 4,
        num_attention_heads: 2,
        joint_attention_dim: 6,
        caption_projection_dim: 8,
        pooled_projection_dim: 5,
        out_channels: Some(2),
        pos_embed_max_size: Some(8),
        qk_norm: qk_norm.then(|| "rms_norm".to_owned()),
        dual_attention_layers: vec![],
        position_grid: flowscale_models::PositionGrid::Table,
        backbone: Default::default(),
        context_split: None,
    }
}
