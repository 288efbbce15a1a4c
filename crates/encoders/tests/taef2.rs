//! TAEF2 against the reference computed with PyTorch from the same pretrained weights
//! (`../shared/assets/taef2/reference_astronaut_128.safetensors`); skipped with a message when
//! the asset folder is absent.

#[path = "../../../tests/support/skip.rs"]
mod skip;

mod common;

use flowscale_encoders::autoencoders::{Autoencoder, AutoencoderSpec, Taef2};
use flowscale_encoders::weights::{self, StateDict};
use flowscale_encoders::EncoderError;
use flowscale_models::checkpoint::safetensors_io;
use std::path::PathBuf;
use tch::{Device, Kind, Tensor};

fn asset_dir(test: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/assets/taef2");
    if dir.join("taef2_encoder.safetensors").is_file() {
        Some(dir)
    } else {
        skip::skipped(
            test,
            &format!("TAEF2 assets not found at {}", dir.display()),
        );
        None
    }
}

fn reference(dir: &std::path::Path) -> StateDict {
    weights::read_file(
        &dir.join("reference_astronaut_128.safetensors"),
        Kind::Float,
        Device::Cpu,
    )
    .unwrap()
}

#[test]
fn reproduces_reference_latent_and_reconstruction() {
    let Some(dir) = asset_dir("reproduces_reference_latent_and_reconstruction") else {
        return;
    };
    let taef2 = Taef2::load(&dir, Kind::Float, Device::Cpu).unwrap();
    assert_eq!(taef2.latent_channels(), 32);
    assert_eq!(taef2.downsample_factor(), 8);
    let r = reference(&dir);
    let image01 = &r["image"];
    // The interface takes [-1, 1].
    let post = taef2.encode(&(image01 * 2.0 - 1.0)).unwrap();
    let err = common::max_abs_diff(&post.mean, &r["latent"]);
    println!("latent: max error {err:.3e}");
    assert!(err < 1e-4, "latent error {err}");
    assert_eq!(post.std.abs().max().double_value(&[]), 0.0);
    // Decode the reference latent, back to [0, 1], unclamped.
    let recon = (taef2.decode(&r["latent"]).unwrap() + 1.0) * 0.5;
    let err = common::max_abs_diff(&recon, &r["reconstruction"]);
    println!("reconstruction: max error {err:.3e}");
    assert!(err < 1e-4, "reconstruction error {err}");
    // A real autoencoder: the reconstruction is close to the image.
    let mse = (recon.clamp(0.0, 1.0) - image01)
        .square()
        .mean(Kind::Double)
        .double_value(&[]);
    println!("reconstruction MSE in [0, 1]: {mse:.3e}");
    assert!(mse < 0.01, "mse {mse}");
}

#[test]
fn loads_through_the_spec_with_a_stable_hash() {
    let Some(dir) = asset_dir("loads_through_the_spec_with_a_stable_hash") else {
        return;
    };
    let spec: AutoencoderSpec = toml::from_str(&format!(
        "kind = \"taef2\"\npath = {:?}\n",
        dir.display().to_string()
    ))
    .unwrap();
    let ae = spec.load(Kind::Float, Device::Cpu).unwrap();
    assert_eq!(ae.name(), "taef2");
    let h = ae.weights_sha256().unwrap();
    assert_eq!(h, ae.weights_sha256().unwrap());
    // The listing of both files, as `sha256sum taef2_decoder... taef2_encoder... | sha256sum`.
    let listing = format!(
        "{}  taef2_decoder.safetensors\n{}  taef2_encoder.safetensors\n",
        flowscale_encoders::autoencoders::fingerprint::file_sha256(
            &dir.join("taef2_decoder.safetensors")
        )
        .unwrap(),
        flowscale_encoders::autoencoders::fingerprint::file_sha256(
            &dir.join("taef2_encoder.safetensors")
        )
        .unwrap(),
    );
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("listing"), listing).unwrap();
    let want =
        flowscale_encoders::autoencoders::fingerprint::file_sha256(&tmp.path().join("listing"))
            .unwrap();
    assert_eq!(h, want);
}

#[test]
fn wrong_key_and_shape_in_a_taef2_file_are_named() {
    let Some(dir) = asset_dir("wrong_key_and_shape_in_a_taef2_file_are_named") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(
        dir.join("taef2_encoder.safetensors"),
        tmp.path().join("taef2_encoder.safetensors"),
    )
    .unwrap();
    let decoder = tmp.path().join("taef2_decoder.safetensors");
    let mut state = weights::read_file(
        &dir.join("taef2_decoder.safetensors"),
        Kind::Float,
        Device::Cpu,
    )
    .unwrap();
    let t = state.remove("3.pool.1.weight").unwrap();
    state.insert("3.pool.2.weight".into(), t);
    state.insert(
        "19.bias".into(),
        Tensor::zeros([4], (Kind::Float, Device::Cpu)),
    );
    let entries: Vec<(String, Tensor)> = state.into_iter().collect();
    safetensors_io::write(&decoder, &entries, None).unwrap();
    match Taef2::load(tmp.path(), Kind::Float, Device::Cpu) {
        Err(EncoderError::Keys { path, report }) => {
            assert_eq!(path, decoder);
            assert_eq!(report.missing, vec!["3.pool.1.weight".to_string()]);
            assert_eq!(report.unexpected, vec!["3.pool.2.weight".to_string()]);
            assert_eq!(
                report.mis_shaped,
                vec![("19.bias".to_string(), vec![3], vec![4])]
            );
        }
        other => panic!("expected a key report, got {other:?}"),
    }
    std::fs::remove_file(&decoder).unwrap();
    let e = Taef2::load(tmp.path(), Kind::Float, Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("taef2_decoder.safetensors") && e.contains("not found"),
        "{e}"
    );
}
