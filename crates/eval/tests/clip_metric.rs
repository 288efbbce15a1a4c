//! `ClipMetric`: loading checks, the grey-to-RGB and batching paths, the score on both scales.
//! Needs `.assets/clip/bpe_simple_vocab_16e6.txt.gz` (scripts/setup).

#[path = "common/tiny_clip.rs"]
mod tiny_clip;

use flowscale_encoders::clip::score;
use flowscale_eval::clip_metric::ClipMetric;
use flowscale_eval::feature_net::FeatureNet;
use std::path::PathBuf;
use tch::{Device, Kind, Tensor};

fn images() -> Tensor {
    tch::manual_seed(1);
    Tensor::randint(256, [5, 1, 28, 28], (Kind::Int64, Device::Cpu)).to_kind(Kind::Uint8)
}

#[test]
fn vocabulary_mismatch_is_named() {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../encoders/tests/fixtures/clip/clip_small");
    let err = ClipMetric::load(&fixture, &tiny_clip::bpe(), Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("49408 tokens") && err.contains("vocab_size 1000"),
        "{err}"
    );
    let err = ClipMetric::load(&fixture.join("absent"), &tiny_clip::bpe(), Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("absent") && err.contains("CLIP model folder"),
        "{err}"
    );
}

#[test]
fn grey_batched_and_scored() {
    tch::set_num_threads(1);
    let tmp = tempfile::tempdir().unwrap();
    let m = ClipMetric::load(
        &tiny_clip::tiny_clip(tmp.path()),
        &tiny_clip::bpe(),
        Device::Cpu,
    )
    .unwrap();
    let x = images();
    let grey = m.image_embeds(&x, 2).unwrap();
    let rgb = m
        .image_embeds(&x.expand([-1, 3, -1, -1], false), 5)
        .unwrap();
    assert_eq!(grey.size(), [5, 8]);
    let err = (&grey - &rgb).abs().max().double_value(&[]);
    assert!(err < 1e-6, "grey vs RGB, batch 2 vs 5: {err}");
    assert_eq!(m.features_u8(&x, 3).unwrap().size(), [5, 8]);
    assert!(m.resize_mode().contains("bicubic32"), "{}", m.resize_mode());
    assert_eq!(m.weights_sha256().len(), 64);

    let caps = [
        "a photo of a Sneaker",
        "a photo of a Bag",
        "a photo of a Coat",
        "x",
        "y",
    ];
    let s = m.score(&x, &caps, 2).unwrap();
    let cos = score::cosines(&grey, &m.text_embeds(&caps).unwrap()).unwrap();
    let c = Vec::<f32>::try_from(&cos).unwrap();
    let raw = c.iter().map(|&v| v as f64).sum::<f64>() / 5.0;
    let x100 = c.iter().map(|&v| (100.0 * v as f64).max(0.0)).sum::<f64>() / 5.0;
    assert_eq!(s.n, 5);
    assert!(
        (s.raw - raw).abs() < 1e-6 && (s.x100 - x100).abs() < 1e-4,
        "{s:?} {c:?}"
    );
    assert!(m.score(&x, &caps[..4], 2).is_err());
    // Captions differ, so their embeddings do.
    let t = m.text_embeds(&caps[..2]).unwrap();
    assert!((t.get(0) - t.get(1)).abs().max().double_value(&[]) > 1e-4);
}
