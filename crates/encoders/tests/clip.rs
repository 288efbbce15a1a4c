//! CLIP text transformer against transformers' `CLIPTextModelWithProjection` at small random
//! configs (fixtures from `scripts/fixtures/text_encoders_reference.py`).

mod common;

use flowscale_encoders::text::ClipText;
use tch::{Device, Kind};

fn check(name: &str) {
    tch::set_num_threads(1);
    let frozen = ClipText::load(&common::fixtures().join(name), Kind::Float, Device::Cpu).unwrap();
    let io = common::read(&format!("{name}_io.safetensors"));
    let ids = io["ids"].shallow_clone();
    assert_eq!(ids.kind(), Kind::Int64);
    let out = tch::no_grad(|| frozen.model.forward(&ids)).unwrap();
    for (key, got) in [
        ("penultimate", &out.penultimate),
        ("last", &out.last),
        ("pooled", &out.pooled),
        ("projected", &out.projected),
    ] {
        let err = common::max_abs_diff(got, &io[key]);
        println!("{name} {key}: max error {err:.3e}");
        assert!(err < 1e-4, "{name} {key}: max error {err}");
    }
}

#[test]
fn legacy_argmax_pooling_quick_gelu_matches_transformers() {
    check("clip_legacy");
}

#[test]
fn end_token_pooling_gelu_matches_transformers() {
    check("clip_eos");
}

#[test]
fn pooling_rules_pick_different_rows() {
    let legacy = ClipText::load(
        &common::fixtures().join("clip_legacy"),
        Kind::Float,
        Device::Cpu,
    )
    .unwrap();
    let eos = ClipText::load(
        &common::fixtures().join("clip_eos"),
        Kind::Float,
        Device::Cpu,
    )
    .unwrap();
    let ids = common::read("clip_legacy_io.safetensors")["ids"].shallow_clone();
    let a = Vec::<i64>::try_from(legacy.model.end_positions(&ids).unwrap()).unwrap();
    let b = Vec::<i64>::try_from(eos.model.end_positions(&ids).unwrap()).unwrap();
    // Row 1 is padded with 0 after its end token at 9; the arg-max rule finds the largest id.
    assert_eq!(b, vec![5, 9, 15]);
    assert_eq!(a[0], 5);
    assert_eq!(a[2], 15);
}

#[test]
fn half_precision_load_runs() {
    let frozen = ClipText::load(
        &common::fixtures().join("clip_eos"),
        Kind::BFloat16,
        Device::Cpu,
    )
    .unwrap();
    let io = common::read("clip_eos_io.safetensors");
    let out = tch::no_grad(|| frozen.model.forward(&io["ids"])).unwrap();
    assert_eq!(out.projected.kind(), Kind::BFloat16);
    let err = common::max_abs_diff(&out.projected, &io["projected"]);
    assert!(err < 0.1, "bf16 error {err}");
}
