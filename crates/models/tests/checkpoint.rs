//! Layout round trips and the errors of checkpoint loading.

mod common;

use common::fixture;
use flowscale_models::checkpoint::{self, diffusers, Layout};
use flowscale_models::{load_mmdit, save_mmdit, Backbone, MmditConfig, ModelError};
use tch::{nn, Device, Kind, Tensor};

fn assert_same_state(a: &checkpoint::StateDict, b: &checkpoint::StateDict) {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, t) in a {
        assert!(t.equal(&b[k]), "{k} differs");
    }
}

#[test]
fn diffusers_to_sd3_to_diffusers_gives_identical_tensors() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["qknorm", "nonsquare"] {
        let first = checkpoint::read(&fixture(name), Kind::Float, Device::Cpu).unwrap();
        let sd3 = tmp.path().join(format!("{name}.safetensors"));
        checkpoint::write(
            &sd3,
            &first.config,
            &first.state,
            Layout::Sd3 { prefixed: true },
        )
        .unwrap();
        let second = checkpoint::read(&sd3, Kind::Float, Device::Cpu).unwrap();
        assert_eq!(second.layout, Layout::Sd3 { prefixed: true });
        assert_eq!(
            second.config, first.config,
            "config travels in the file's metadata"
        );
        let dir = tmp.path().join(format!("{name}_diffusers"));
        checkpoint::write(&dir, &second.config, &second.state, Layout::Diffusers).unwrap();
        let third = checkpoint::read(&dir, Kind::Float, Device::Cpu).unwrap();
        assert_same_state(&first.state, &third.state);
        assert_eq!(third.config, first.config);
    }
}

#[test]
fn written_sd3_file_equals_the_reference_sd3_layout() {
    // The reference file was checked against diffusers' own converter by the fixture script.
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = checkpoint::read(&fixture("qknorm"), Kind::Float, Device::Cpu).unwrap();
    let ours = tmp.path().join("ours.safetensors");
    checkpoint::write(
        &ours,
        &ckpt.config,
        &ckpt.state,
        Layout::Sd3 { prefixed: false },
    )
    .unwrap();
    let read = |p: &std::path::Path| -> checkpoint::StateDict {
        checkpoint::safetensors_io::read(p, Kind::Float, Device::Cpu)
            .unwrap()
            .tensors
            .into_iter()
            .collect()
    };
    assert_same_state(&read(&fixture("qknorm_sd3.safetensors")), &read(&ours));
}

#[test]
fn sharded_diffusers_folder_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = checkpoint::read(&fixture("nonsquare"), Kind::Float, Device::Cpu).unwrap();
    let dir = tmp.path().join("sharded");
    diffusers::write(&dir, &ckpt.config, &ckpt.state, Some(20_000)).unwrap();
    assert!(dir.join(diffusers::INDEX_FILE).exists());
    assert!(!dir.join(diffusers::WEIGHTS_FILE).exists());
    let shards = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy()
                .starts_with("diffusion_pytorch_model-")
        })
        .count();
    assert!(shards > 2, "{shards} shards");
    let back = checkpoint::read(&dir, Kind::Float, Device::Cpu).unwrap();
    assert_same_state(&ckpt.state, &back.state);
}

#[test]
fn loads_half_precision_files_with_conversion() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = checkpoint::read(&fixture("qknorm"), Kind::BFloat16, Device::Cpu).unwrap();
    assert!(ckpt.state.values().all(|t| t.kind() == Kind::BFloat16));
    let path = tmp.path().join("bf16.safetensors");
    checkpoint::write(
        &path,
        &ckpt.config,
        &ckpt.state,
        Layout::Sd3 { prefixed: false },
    )
    .unwrap();
    let loaded = load_mmdit(&path, Device::Cpu).unwrap();
    let w = &loaded.vs.variables()["context_embedder.weight"];
    assert_eq!(w.kind(), Kind::Float);
    let want = ckpt.state["context_embedder.weight"].to_kind(Kind::Float);
    assert!(w.equal(&want));
}

#[test]
fn a_trained_model_saves_and_reloads_in_both_layouts() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = MmditConfig::tiny(2);
    let vs = nn::VarStore::new(Device::Cpu);
    Backbone::new(&vs.root(), &cfg).unwrap();
    for layout in [Layout::Diffusers, Layout::Sd3 { prefixed: false }] {
        let path = tmp.path().join(format!("{layout:?}"));
        save_mmdit(&vs, &cfg, &path, layout).unwrap();
        let loaded = load_mmdit(&path, Device::Cpu).unwrap();
        assert_eq!(loaded.model.config(), &cfg);
        assert_same_state(
            &checkpoint::state_dict(&vs),
            &checkpoint::state_dict(&loaded.vs),
        );
    }
}

fn keys_error(err: ModelError) -> flowscale_models::KeyReport {
    match err {
        ModelError::Keys { report, .. } => report,
        other => panic!("expected a key report, got {other}"),
    }
}

#[test]
fn wrong_and_missing_keys_are_all_named() {
    let tmp = tempfile::tempdir().unwrap();
    let mut ckpt = checkpoint::read(&fixture("qknorm"), Kind::Float, Device::Cpu).unwrap();
    let t = ckpt
        .state
        .remove("transformer_blocks.1.attn.to_k.bias")
        .unwrap();
    ckpt.state
        .insert("transformer_blocks.1.attn.to_kk.bias".into(), t);
    ckpt.state.remove("proj_out.weight");
    let dir = tmp.path().join("bad");
    diffusers::write(&dir, &ckpt.config, &ckpt.state, None).unwrap();
    let err = load_mmdit(&dir, Device::Cpu).err().expect("must fail");
    let message = err.to_string();
    let report = keys_error(err);
    assert_eq!(
        report.missing,
        // In model order.
        vec!["transformer_blocks.1.attn.to_k.bias", "proj_out.weight"]
    );
    assert_eq!(
        report.unexpected,
        vec!["transformer_blocks.1.attn.to_kk.bias"]
    );
    assert!(message.contains("proj_out.weight") && message.contains("to_kk"));
}

#[test]
fn wrong_shapes_are_named_in_both_layouts() {
    let tmp = tempfile::tempdir().unwrap();
    let mut ckpt = checkpoint::read(&fixture("qknorm"), Kind::Float, Device::Cpu).unwrap();
    ckpt.state.insert(
        "transformer_blocks.0.ff.net.2.bias".into(),
        Tensor::zeros([31], (Kind::Float, Device::Cpu)),
    );
    let dir = tmp.path().join("bad");
    diffusers::write(&dir, &ckpt.config, &ckpt.state, None).unwrap();
    let report = keys_error(load_mmdit(&dir, Device::Cpu).err().expect("must fail"));
    assert_eq!(
        report.mis_shaped,
        vec![(
            "transformer_blocks.0.ff.net.2.bias".to_owned(),
            vec![32],
            vec![31]
        )]
    );

    // SD3 layout: reshape a fused qkv and drop a key; the errors use SD3 names.
    let mut sd3: checkpoint::StateDict = checkpoint::safetensors_io::read(
        &fixture("qknorm_sd3.safetensors"),
        Kind::Float,
        Device::Cpu,
    )
    .unwrap()
    .tensors
    .into_iter()
    .collect();
    sd3.insert(
        "joint_blocks.1.context_block.attn.qkv.bias".into(),
        Tensor::zeros([95], (Kind::Float, Device::Cpu)),
    );
    sd3.remove("joint_blocks.0.x_block.mlp.fc2.weight");
    let path = tmp.path().join("bad_sd3.safetensors");
    let entries: Vec<(String, Tensor)> = sd3.into_iter().collect();
    checkpoint::safetensors_io::write(&path, &entries, None).unwrap();
    let report = keys_error(load_mmdit(&path, Device::Cpu).err().expect("must fail"));
    assert_eq!(
        report.missing,
        vec!["joint_blocks.0.x_block.mlp.fc2.weight"]
    );
    assert_eq!(
        report.mis_shaped,
        vec![(
            "joint_blocks.1.context_block.attn.qkv.bias".to_owned(),
            vec![96],
            vec![95]
        )]
    );
}

#[test]
fn truncated_file_is_a_format_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("qknorm_sd3.safetensors")).unwrap();
    let path = tmp.path().join("truncated.safetensors");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    match load_mmdit(&path, Device::Cpu) {
        Err(ModelError::Format { path: p, message }) => {
            assert_eq!(p, path);
            assert!(message.contains("safetensors"), "{message}");
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("truncated file loaded"),
    }
}

#[test]
fn missing_folder_files_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("config.json"),
        MmditConfig::tiny(2).to_diffusers_json().unwrap(),
    )
    .unwrap();
    let err = load_mmdit(tmp.path(), Device::Cpu)
        .err()
        .expect("must fail");
    assert!(
        err.to_string()
            .contains("diffusion_pytorch_model.safetensors"),
        "{err}"
    );
}
