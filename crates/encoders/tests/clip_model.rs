//! CLIP vision tower, `CLIPModel` loading and the CLIP score against transformers' `CLIPModel`
//! at a small random config (fixtures from `scripts/fixtures/clip_model_reference.py`).

mod common;

use flowscale_encoders::clip::{score, ClipModel, ClipScore, ClipVision};
use flowscale_encoders::{weights, EncoderError};
use std::path::PathBuf;
use tch::{Device, Kind, Tensor};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clip")
}

fn io() -> weights::StateDict {
    weights::read_file(
        &dir().join("clip_small_io.safetensors"),
        Kind::Float,
        Device::Cpu,
    )
    .unwrap()
}

fn load() -> flowscale_encoders::text::Frozen<ClipModel> {
    ClipModel::load(&dir().join("clip_small"), Kind::Float, Device::Cpu).unwrap()
}

#[test]
fn image_and_text_embeddings_and_score_match_transformers() {
    tch::set_num_threads(1);
    let clip = load();
    let io = io();
    assert_eq!(clip.model.config().projection_dim, 16);
    let (img, txt) = tch::no_grad(|| {
        (
            clip.model.image_embeds(&io["pixel_values"]).unwrap(),
            clip.model.text_embeds(&io["ids"]).unwrap(),
        )
    });
    let e_img = common::max_abs_diff(&img, &io["image_embeds"]);
    let e_txt = common::max_abs_diff(&txt, &io["text_embeds"]);
    let cos = score::cosines(&img, &txt).unwrap();
    let e_cos = common::max_abs_diff(&cos, &io["cosine"]);
    let e_x100 = common::max_abs_diff(&score::x100(&cos).unwrap(), &io["score_x100"]);
    // logits_per_image = exp(logit_scale) * normalised image . normalised text^T.
    let logits = score::l2_normalise(&img)
        .unwrap()
        .matmul(&score::l2_normalise(&txt).unwrap().transpose(0, 1))
        * clip.model.logit_scale().unwrap();
    let e_logits = common::max_abs_diff(&logits, &io["logits_per_image"]);
    println!(
        "image {e_img:.3e} text {e_txt:.3e} cosine {e_cos:.3e} x100 {e_x100:.3e} logits {e_logits:.3e}"
    );
    assert!(e_img < 1e-4, "image embeddings: max error {e_img}");
    assert!(e_txt < 1e-4, "text embeddings: max error {e_txt}");
    assert!(e_cos < 1e-4, "cosine: max error {e_cos}");
    assert!(e_x100 < 1e-2, "x100 score: max error {e_x100}");
    assert!(e_logits < 1e-3, "logits: max error {e_logits}");
    // The fixture has positive and negative cosines, so the clamp at 0 is exercised.
    let c = Vec::<f32>::try_from(&io["cosine"]).unwrap();
    assert!(
        c.iter().any(|&v| v < 0.0) && c.iter().any(|&v| v > 0.0),
        "{c:?}"
    );
}

#[test]
fn mean_score_on_both_scales() {
    let cos = Tensor::from_slice(&[0.25f32, -0.1, 0.3]);
    let s = ClipScore::from_cosines(&cos).unwrap();
    assert_eq!(s.n, 3);
    assert!((s.raw - 0.15).abs() < 1e-7, "{s:?}");
    assert!((s.x100 - 55.0 / 3.0).abs() < 1e-5, "{s:?}");
    assert!(ClipScore::from_cosines(&Tensor::from_slice(&[0f32; 0])).is_err());
}

#[test]
fn vision_rejects_wrong_image_size() {
    let clip = load();
    let x = Tensor::zeros([1, 3, 224, 224], (Kind::Float, Device::Cpu));
    let err = clip.model.image_embeds(&x).unwrap_err().to_string();
    assert!(err.contains("[B, 3, 32, 32]"), "{err}");
}

/// A copy of the fixture folder with the weights edited by `edit`.
fn edited(edit: impl FnOnce(&mut weights::StateDict)) -> (tempfile::TempDir, EncoderError) {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(
        dir().join("clip_small/config.json"),
        tmp.path().join("config.json"),
    )
    .unwrap();
    let mut state =
        weights::read_folder(&dir().join("clip_small"), Kind::Float, Device::Cpu).unwrap();
    edit(&mut state);
    let named: Vec<(String, Tensor)> = state.into_iter().collect();
    Tensor::write_safetensors(&named, tmp.path().join("model.safetensors")).unwrap();
    let err = ClipModel::load(tmp.path(), Kind::Float, Device::Cpu).unwrap_err();
    (tmp, err)
}

#[test]
fn load_names_missing_unexpected_and_misshaped_keys() {
    let (_tmp, err) = edited(|s| {
        assert!(s.remove("vision_model.pre_layrnorm.weight").is_some());
        assert!(s.remove("logit_scale").is_some());
        s.insert(
            "vision_model.extra".into(),
            Tensor::zeros([2], (Kind::Float, Device::Cpu)),
        );
        s.insert(
            "visual_projection.weight".into(),
            Tensor::zeros([8, 32], (Kind::Float, Device::Cpu)),
        );
    });
    let msg = err.to_string();
    assert!(matches!(err, EncoderError::Keys { .. }), "{msg}");
    for needle in [
        "missing keys: logit_scale, vision_model.pre_layrnorm.weight",
        "unexpected keys: vision_model.extra",
        "visual_projection.weight (expected [16, 32], found [8, 32])",
    ] {
        assert!(msg.contains(needle), "{needle:?} not in {msg}");
    }
}

#[test]
fn stored_position_ids_are_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(
        dir().join("clip_small/config.json"),
        tmp.path().join("config.json"),
    )
    .unwrap();
    let mut state =
        weights::read_folder(&dir().join("clip_small"), Kind::Float, Device::Cpu).unwrap();
    state.insert(
        "vision_model.embeddings.position_ids".into(),
        Tensor::arange(17, (Kind::Int64, Device::Cpu)).view([1, 17]),
    );
    let named: Vec<(String, Tensor)> = state.into_iter().collect();
    Tensor::write_safetensors(&named, tmp.path().join("model.safetensors")).unwrap();
    ClipModel::load(tmp.path(), Kind::Float, Device::Cpu).unwrap();
}

/// A `CLIPVisionModelWithProjection` folder (the vision keys of the fixture, the vision config
/// with the model's projection width) loads alone and gives the same image embeddings.
#[test]
fn vision_only_folder_loads_and_matches() {
    let tmp = tempfile::tempdir().unwrap();
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir().join("clip_small/config.json")).unwrap(),
    )
    .unwrap();
    let mut vision = config["vision_config"].clone();
    vision["projection_dim"] = config["projection_dim"].clone();
    std::fs::write(tmp.path().join("config.json"), vision.to_string()).unwrap();
    let state = weights::read_folder(&dir().join("clip_small"), Kind::Float, Device::Cpu).unwrap();
    let named: Vec<(String, Tensor)> = state
        .into_iter()
        .filter(|(k, _)| k.starts_with("vision_model.") || k == "visual_projection.weight")
        .collect();
    Tensor::write_safetensors(&named, tmp.path().join("model.safetensors")).unwrap();
    let v = ClipVision::load(tmp.path(), Kind::Float, Device::Cpu).unwrap();
    let io = io();
    let out = tch::no_grad(|| v.model.forward(&io["pixel_values"])).unwrap();
    assert_eq!(out.last.size(), [4, 17, 32]);
    let err = common::max_abs_diff(&out.projected, &io["image_embeds"]);
    assert!(err < 1e-4, "vision-only image embeddings: max error {err}");
}
