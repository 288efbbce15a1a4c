//! A tiny run conditioned on MiniLM encodings of the class captions (`provider = "captions"`),
//! and the shape check against the text encoder.

mod common;

use common::tiny_config;
use flowscale_train::{train, TrainOptions};
use std::path::{Path, PathBuf};

fn minilm_config(dir: &Path) -> PathBuf {
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.assets/all-minilm-l6-v2");
    assert!(
        assets.is_dir(),
        "run scripts/setup: {} missing",
        assets.display()
    );
    let path = dir.join("minilm.toml");
    std::fs::write(
        &path,
        format!(
            "encoder = \"minilm\"\n[minilm]\npath = \"{}\"\ntokens = 8\n",
            assets.display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn a_run_trains_on_minilm_caption_features() {
    let tmp = tempfile::tempdir().unwrap();
    let enc = minilm_config(tmp.path());
    let enc_set = format!("conditioning.text_encoder={}", enc.display());
    let cfg = tiny_config(
        tmp.path(),
        "captions",
        &[
            "conditioning.provider=captions",
            &enc_set,
            "conditioning.context_tokens=8",
            "conditioning.context_dim=384",
            "conditioning.pooled_dim=384",
            "train.steps=3",
            "validation.every=3",
            "checkpoint.every=3",
            "samples.every=3",
        ],
    );
    let state = train(
        cfg,
        TrainOptions {
            quiet: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(state.step, 3);
    let resolved =
        std::fs::read_to_string(tmp.path().join("captions/config.resolved.toml")).unwrap();
    assert!(resolved.contains("provider = \"captions\""), "{resolved}");
    assert!(
        resolved.contains("caption_template = \"a photo of a {}\""),
        "{resolved}"
    );
    // Nothing of the frozen encoder is trained or checkpointed.
    let ckpt = tmp
        .path()
        .join("captions/checkpoints/step-000000003/model.safetensors");
    let names: Vec<String> = tch::Tensor::read_safetensors(&ckpt)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(
        names.iter().all(|k| !k.starts_with("conditioner.")),
        "{names:?}"
    );
}

#[test]
fn caption_shapes_must_match_the_config() {
    let tmp = tempfile::tempdir().unwrap();
    let enc = minilm_config(tmp.path());
    let enc_set = format!("conditioning.text_encoder={}", enc.display());
    let cfg = tiny_config(
        tmp.path(),
        "bad",
        &["conditioning.provider=captions", &enc_set],
    );
    let err = train(
        cfg,
        TrainOptions {
            quiet: true,
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("gives 8 context tokens of 384") && err.contains("context_dim = 384"),
        "{err}"
    );
}

#[test]
fn captions_without_a_text_encoder_is_a_config_error() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/demo.toml");
    let text = std::fs::read_to_string(&demo).unwrap();
    let err = flowscale_train::config::load_str::<flowscale_train::config::RunConfig>(
        &text,
        &demo,
        &["conditioning.provider=captions".to_string()],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("conditioning.text_encoder") && err.contains("is required"),
        "{err}"
    );
}
