//! Frechet distance against pytorch-fid's `calculate_frechet_distance` on committed feature sets
//! (`scripts/fixtures/frechet_reference.py`; versions in `fixtures/frechet/versions.json`).

use flowscale_eval::{frechet_distance, FeatureStats};
use std::path::PathBuf;
use tch::Tensor;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/frechet")
}

fn case(name: &str) {
    let dir = fixtures();
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let want = expected[name]["fid"].as_f64().unwrap();
    let a = Tensor::read_npy(dir.join(format!("{name}_a.npy"))).unwrap();
    let b = Tensor::read_npy(dir.join(format!("{name}_b.npy"))).unwrap();
    assert_eq!(
        a.size()[1],
        expected[name]["d"].as_i64().unwrap(),
        "feature dimension of {name}"
    );
    let sa = FeatureStats::from_features(&a).unwrap();
    let sb = FeatureStats::from_features(&b).unwrap();
    let got = frechet_distance(&sa, &sb).unwrap();
    let rel = (got - want).abs() / want.abs();
    println!("{name}: flowscale {got:.12} pytorch-fid {want:.12} rel {rel:.3e}");
    assert!(
        rel < 1e-6,
        "{name}: {got} vs pytorch-fid {want} (rel {rel:.3e})"
    );
}

#[test]
fn small_full_rank_matches_pytorch_fid() {
    case("small");
}

#[test]
fn near_singular_covariance_matches_pytorch_fid() {
    case("near_singular");
}

#[test]
fn d2048_singular_covariance_matches_pytorch_fid() {
    case("d2048");
}
