//! Parity with diffusers' SD3Transformer2DModel (fixtures from scripts/fixtures/mmdit_reference.py).

mod common;

use common::{fixture, max_abs_diff, read_fixture};
use flowscale_models::checkpoint::load_mmdit_with_head_dim;
use flowscale_models::checkpoint::{self, Layout};
use flowscale_models::embeddings::position_table;
use tch::Device;

fn parity(checkpoint_name: &str, io: &str, expect_layout: Layout, head_dim: Option<i64>) -> f64 {
    tch::set_num_threads(1);
    let loaded =
        load_mmdit_with_head_dim(&fixture(checkpoint_name), Device::Cpu, head_dim).expect("load");
    assert_eq!(loaded.layout, expect_layout);
    let x = read_fixture(io);
    let out = loaded
        .model
        .forward(&x["latents"], &x["timestep"], &x["context"], &x["pooled"])
        .expect("forward");
    let err = max_abs_diff(&out, &x["output"]);
    println!("{checkpoint_name}: max |flowscale - diffusers| = {err:.3e}");
    assert!(err < 1e-4, "{checkpoint_name}: max error {err}");
    // The output is not trivially small: parity is meaningful.
    assert!(x["output"].abs().max().double_value(&[]) > 0.1);
    err
}

#[test]
fn qk_norm_model_matches_diffusers_in_diffusers_layout() {
    parity("qknorm", "qknorm_io.safetensors", Layout::Diffusers, None);
}

#[test]
fn qk_norm_model_matches_diffusers_in_sd3_layout() {
    parity(
        "qknorm_sd3.safetensors",
        "qknorm_io.safetensors",
        Layout::Sd3 { prefixed: false },
        None,
    );
}

#[test]
fn non_square_model_matches_diffusers_in_diffusers_layout() {
    parity(
        "nonsquare",
        "nonsquare_io.safetensors",
        Layout::Diffusers,
        None,
    );
}

#[test]
fn non_square_model_matches_diffusers_in_prefixed_sd3_layout() {
    parity(
        "nonsquare_sd3.safetensors",
        "nonsquare_io.safetensors",
        Layout::Sd3 { prefixed: true },
        Some(8),
    );
}

#[test]
fn position_table_matches_diffusers_buffer() {
    for name in ["qknorm", "nonsquare"] {
        let ckpt = checkpoint::read(&fixture(name), tch::Kind::Float, Device::Cpu).unwrap();
        let cfg = &ckpt.config;
        let ours = position_table(
            cfg.hidden(),
            cfg.pos_max(),
            cfg.sample_size / cfg.patch_size,
            Device::Cpu,
        )
        .unwrap();
        let err = max_abs_diff(&ours, &ckpt.state["pos_embed.pos_embed"]);
        assert!(err < 1e-6, "{name}: position table differs by {err}");
    }
}
