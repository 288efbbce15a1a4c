//! FID Inception features and FID against PyTorch / pytorch-fid with the same TorchScript weights
//! (`scripts/fixtures/inception_reference.py`; versions in `fixtures/inception/versions.json`).
//! Needs `.assets/fid-inception/default_1.pt` (scripts/setup).

use flowscale_eval::frechet_distance;
use flowscale_eval::inception::{FidInception, DEFAULT_WEIGHTS};
use flowscale_eval::reference::{folder_features, folder_reference_stats, load_reference_stats};
use std::path::PathBuf;
use tch::{Device, Tensor};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inception")
}

fn expected() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("expected.json")).unwrap())
        .unwrap()
}

#[test]
fn features_and_fid_match_pytorch_with_the_same_weights() {
    tch::set_num_threads(2);
    let net = FidInception::load(&root().join(DEFAULT_WEIGHTS), Device::Cpu).unwrap();
    let want = expected();
    assert_eq!(net.sha256, want["weights_sha256"].as_str().unwrap());

    // 16 committed RGB images: features equal PyTorch's to 1e-4.
    let feats = folder_features(&net, &fixtures().join("a"), 8).unwrap();
    let reference = Tensor::read_npy(fixtures().join("features_a.npy")).unwrap();
    assert_eq!(feats.size(), vec![16, 2048]);
    let err = (&feats - &reference).abs().max().double_value(&[]);
    let scale = reference.abs().max().double_value(&[]);
    println!("features: max abs error {err:.3e} (max |feature| {scale:.3})");
    assert!(err < 1e-4, "max abs feature error {err}");

    // FID of folder a (RGB) vs folder b (grey PNGs) equals pytorch-fid's to 1e-3, through the
    // cache; the second call reads the cache and gives the same statistics.
    let cache = tempfile::tempdir().unwrap();
    let a = folder_reference_stats(&net, &fixtures().join("a"), cache.path(), 8).unwrap();
    let b = folder_reference_stats(&net, &fixtures().join("b"), cache.path(), 8).unwrap();
    let fid = frechet_distance(&a.stats, &b.stats).unwrap();
    let want_fid = want["fid_a_b"].as_f64().unwrap();
    println!("FID a-b: flowscale {fid:.6} pytorch-fid {want_fid:.6}");
    assert!((fid - want_fid).abs() < 1e-3, "{fid} vs {want_fid}");
    assert_eq!(a.provenance.n_images, 16);
    assert_eq!(a.provenance.feature_weights_sha256, net.sha256);

    let again = folder_reference_stats(&net, &fixtures().join("a"), cache.path(), 8).unwrap();
    assert_eq!(again.provenance, a.provenance);
    assert!(again.stats.cov.equal(&a.stats.cov));

    // A tampered cache file is refused by its hash.
    let st = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .unwrap();
    let mut bytes = std::fs::read(&st).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&st, bytes).unwrap();
    let e = load_reference_stats(&st).unwrap_err().to_string();
    assert!(e.contains("differs from stats_sha256"), "{e}");
}
