//! `flowscale export` builds the checkpoint's model through the run layer, so every tensor of
//! the chosen weights is checked by name, shape and dtype: a checkpoint with a missing, an
//! unexpected or a mis-shaped tensor is refused, naming each, instead of being written out; and a
//! file changed after it was written is caught by the checkpoint's checksums before that.

mod common;

use common::{quiet, tiny_config};
use flowscale_train::export::{export, ExportFormat, ExportRequest, StepChoice, WeightChoice};
use flowscale_train::train;
use std::path::Path;
use tch::{Kind, Tensor};

fn request(source: &Path, out: &Path, weights: WeightChoice) -> ExportRequest {
    ExportRequest {
        source: source.to_path_buf(),
        format: ExportFormat::Safetensors,
        weights,
        step: StepChoice::Latest,
        dtype: Kind::Float,
        out: out.to_path_buf(),
    }
}

#[test]
fn export_refuses_checkpoints_that_do_not_match_the_model() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny_config(
        tmp.path(),
        "exp",
        &["train.steps=3", "checkpoint.every=3", "validation.every=3"],
    );
    train(cfg, quiet()).unwrap();
    let ck = tmp.path().join("exp/checkpoints/step-000000003");

    // The intact checkpoint exports every trained tensor and the position table.
    let good = tmp.path().join("good.safetensors");
    let report = export(&request(&ck, &good, WeightChoice::Ema(Some(0.9)))).unwrap();
    assert_eq!(report.weights, "ema:0.9");
    let written: Vec<(String, Tensor)> = Tensor::read_safetensors(&good).unwrap();
    let names: Vec<&str> = written.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"pos_embed.pos_embed"), "{names:?}");
    assert!(names.contains(&"conditioner.pooled"), "{names:?}");
    // The EMA's values, not the raw weights', for a trained tensor.
    let ema: Vec<(String, Tensor)> =
        Tensor::read_safetensors(ck.join("ema-0.9.safetensors")).unwrap();
    let (name, value) = &ema[0];
    let out = &written.iter().find(|(n, _)| n == name).unwrap().1;
    assert!(out.equal(value), "{name} is not the EMA's");

    // Damage the raw weights: drop one tensor, add a stray one, reshape a third.
    let path = ck.join("model.safetensors");
    let mut tensors: Vec<(String, Tensor)> = Tensor::read_safetensors(&path).unwrap();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let dropped = tensors.remove(0).0;
    let reshaped = tensors
        .iter_mut()
        .find(|(_, t)| t.dim() == 2)
        .map(|(n, t)| {
            *t = t.flatten(0, -1);
            n.clone()
        })
        .unwrap();
    tensors.push((
        "stray.weight".into(),
        Tensor::zeros([2], (Kind::Float, tch::Device::Cpu)),
    ));
    Tensor::write_safetensors(&tensors, &path).unwrap();

    // The checkpoint's checksums see the change first.
    let bad = tmp.path().join("bad.safetensors");
    let err = export(&request(&ck, &bad, WeightChoice::Raw))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model.safetensors") && err.contains("damaged since it was written"),
        "{err}"
    );
    // Without them (a folder assembled by hand), the model's own check names every tensor.
    std::fs::remove_file(ck.join("checksums.json")).unwrap();
    let err = export(&request(&ck, &bad, WeightChoice::Raw))
        .unwrap_err()
        .to_string();
    for part in [&dropped, &reshaped, "stray.weight"] {
        assert!(err.contains(part), "{part} not named in: {err}");
    }
    assert!(!bad.exists(), "a refused export wrote {}", bad.display());
}
