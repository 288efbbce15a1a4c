//! T5 encoder against transformers' `T5EncoderModel` at a small random gated-GELU config
//! (fixtures from `scripts/fixtures/text_encoders_reference.py`).

mod common;

use flowscale_encoders::text::t5::model::relative_position_buckets;
use flowscale_encoders::text::T5Encoder;
use tch::{Device, Kind, Tensor};

#[test]
fn encoder_matches_transformers_with_and_without_mask() {
    tch::set_num_threads(1);
    let frozen = T5Encoder::load(
        &common::fixtures().join("t5_tiny"),
        Kind::Float,
        Device::Cpu,
    )
    .unwrap();
    let io = common::read("t5_tiny_io.safetensors");
    let ids = &io["ids"];
    let plain = tch::no_grad(|| frozen.model.forward(ids, None)).unwrap();
    let masked = tch::no_grad(|| frozen.model.forward(ids, Some(&io["mask"]))).unwrap();
    let e1 = common::max_abs_diff(&plain, &io["output"]);
    let e2 = common::max_abs_diff(&masked, &io["output_masked"]);
    println!("t5 max error: no mask {e1:.3e}, mask {e2:.3e}");
    assert!(e1 < 1e-4 && e2 < 1e-4, "{e1} {e2}");
    // The mask matters for the padded row only.
    assert!(common::max_abs_diff(&plain.get(1), &masked.get(1)) > 1e-3);
    assert!(common::max_abs_diff(&plain.get(0), &masked.get(0)) < 1e-6);
}

#[test]
fn buckets_follow_t5_rule() {
    // 32 buckets, max distance 128: 16 per direction, exact below 8, logarithmic above.
    let b = relative_position_buckets(1, 200, 32, 128, Device::Cpu).unwrap();
    let b = Vec::<i64>::try_from(b.view([-1])).unwrap();
    assert_eq!(&b[..8], &[0, 17, 18, 19, 20, 21, 22, 23]);
    // relative +8 -> 16 + 8; +127 -> 16 + 15; beyond max distance clamps at 31.
    assert_eq!(b[8], 24);
    assert_eq!(b[127], 31);
    assert_eq!(b[199], 31);
    // Negative offsets use the first half.
    let n = relative_position_buckets(200, 1, 32, 128, Device::Cpu).unwrap();
    let n = Vec::<i64>::try_from(n.view([-1])).unwrap();
    assert_eq!(&n[..8], &[0, 1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(n[199], 15);
}

#[test]
fn checkpoint_with_only_the_encoder_token_table_loads() {
    let src = common::fixtures().join("t5_tiny");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(src.join("config.json"), dir.path().join("config.json")).unwrap();
    let mut state = common::read("t5_tiny/model.safetensors");
    let shared = state.remove("shared.weight").unwrap();
    state.insert("encoder.embed_tokens.weight".into(), shared);
    let tensors: Vec<(String, Tensor)> = state.into_iter().collect();
    Tensor::write_safetensors(&tensors, dir.path().join("model.safetensors")).unwrap();
    let frozen = T5Encoder::load(dir.path(), Kind::Float, Device::Cpu).unwrap();
    let io = common::read("t5_tiny_io.safetensors");
    let out = tch::no_grad(|| frozen.model.forward(&io["ids"], None)).unwrap();
    assert!(common::max_abs_diff(&out, &io["output"]) < 1e-4);
}

#[test]
fn sharded_folder_loads_and_bad_index_is_named() {
    let src = common::fixtures().join("t5_tiny");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(src.join("config.json"), dir.path().join("config.json")).unwrap();
    let state = common::read("t5_tiny/model.safetensors");
    let (a, b): (Vec<_>, Vec<_>) = state.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
    let mut map = serde_json::Map::new();
    for (name, part) in [
        ("model-00001-of-00002.safetensors", a),
        ("model-00002-of-00002.safetensors", b),
    ] {
        let tensors: Vec<(String, Tensor)> = part.into_iter().map(|(_, kv)| kv).collect();
        for (k, _) in &tensors {
            map.insert(k.clone(), serde_json::Value::String(name.into()));
        }
        Tensor::write_safetensors(&tensors, dir.path().join(name)).unwrap();
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": map});
    let index_path = dir.path().join("model.safetensors.index.json");
    std::fs::write(&index_path, index.to_string()).unwrap();
    let frozen = T5Encoder::load(dir.path(), Kind::Float, Device::Cpu).unwrap();
    let io = common::read("t5_tiny_io.safetensors");
    let out = tch::no_grad(|| frozen.model.forward(&io["ids"], None)).unwrap();
    assert!(common::max_abs_diff(&out, &io["output"]) < 1e-4);
    // An index that lists a tensor under the wrong shard is an error naming the tensor.
    let other = |v: &serde_json::Value| {
        if v.as_str() == Some("model-00001-of-00002.safetensors") {
            "model-00002-of-00002.safetensors"
        } else {
            "model-00001-of-00002.safetensors"
        }
    };
    let moved = other(&map["shared.weight"]);
    map.insert("shared.weight".into(), moved.into());
    let index = serde_json::json!({"weight_map": map});
    std::fs::write(&index_path, index.to_string()).unwrap();
    let err = T5Encoder::load(dir.path(), Kind::Float, Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tensor shared.weight is not listed for this shard"),
        "{err}"
    );
}

#[test]
fn unsupported_feed_forward_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(common::fixtures().join("t5_tiny/config.json")).unwrap();
    let text = text.replace("\"gated-gelu\"", "\"gated-swish\"");
    std::fs::write(dir.path().join("config.json"), text).unwrap();
    let err = T5Encoder::load(dir.path(), Kind::Float, Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("config.json") && err.contains("gated-swish"),
        "{err}"
    );
}

#[test]
fn half_precision_loads_create_half_variables() {
    for kind in [Kind::BFloat16, Kind::Half] {
        let frozen =
            T5Encoder::load(&common::fixtures().join("t5_tiny"), kind, Device::Cpu).unwrap();
        assert!(frozen.vs.variables().values().all(|v| v.kind() == kind));
        let io = common::read("t5_tiny_io.safetensors");
        let out = tch::no_grad(|| frozen.model.forward(&io["ids"], None)).unwrap();
        assert_eq!(out.kind(), kind);
        let err = common::max_abs_diff(&out, &io["output"]);
        assert!(err < 0.15, "{kind:?}: {err}");
    }
}
