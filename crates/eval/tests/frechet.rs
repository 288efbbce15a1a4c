//! Frechet distance against pytorch-fid's `calculate_frechet_distance` on committed feature sets
//! (`scripts/fixtures/frechet_reference.py`; versions in `fixtures/frechet/versions.json`), by
//! every route: two statistics, and a prepared reference with the full and the low-rank form.
//! `small` (n = 500 > d = 16) and `near_singular` (400 > 8) are the full form's cases in an
//! eval, `d2048` (160 < 2048, singular covariances) the low-rank form's.

use flowscale_eval::{frechet_distance, FeatureStats, PreparedReference, TraceForm};
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
    let prepared = PreparedReference::new(&sb).unwrap();
    let routes = [
        ("two statistics", frechet_distance(&sa, &sb).unwrap()),
        (
            "prepared, full",
            prepared
                .distance_to_features_in(&a, TraceForm::Full)
                .unwrap(),
        ),
        (
            "prepared, low-rank",
            prepared
                .distance_to_features_in(&a, TraceForm::LowRank)
                .unwrap(),
        ),
        (
            "prepared, chosen",
            prepared.distance_to_features(&a).unwrap(),
        ),
        (
            "prepared, statistics",
            prepared.distance_to_stats(&sa).unwrap(),
        ),
    ];
    for (route, got) in routes {
        let rel = (got - want).abs() / want.abs();
        println!("{name} {route}: flowscale {got:.12} pytorch-fid {want:.12} rel {rel:.3e}");
        assert!(
            rel < 1e-6,
            "{name} {route}: {got} vs pytorch-fid {want} (rel {rel:.3e})"
        );
    }
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

/// On the singular 2048-d case the low-rank form is checked beyond pytorch-fid's own accuracy
/// (whose `sqrtm` of a matrix with 1889 zero eigenvalues is off by ~5e-7): with both sides' centred
/// features `A`, `B` (`S1 = A^T A`, `S2 = B^T B`, scaled), the non-zero eigenvalues of `S1 S2` are
/// the squared singular values of `A B^T` `[160, 160]`, a route that needs no square root matrix.
#[test]
fn d2048_low_rank_form_equals_the_two_sided_route() {
    let dir = fixtures();
    let a = Tensor::read_npy(dir.join("d2048_a.npy")).unwrap();
    let b = Tensor::read_npy(dir.join("d2048_b.npy")).unwrap();
    let (sa, sb) = (
        FeatureStats::from_features(&a).unwrap(),
        FeatureStats::from_features(&b).unwrap(),
    );
    let centred = |x: &Tensor, s: &FeatureStats| {
        let n = x.size()[0] as f64;
        (x.to_kind(tch::Kind::Double) - &s.mean) / (n - 1.0).sqrt()
    };
    let (ca, cb) = (centred(&a, &sa), centred(&b, &sb));
    let (_, sv, _) = ca.matmul(&cb.tr()).svd(true, false);
    let diff = &sa.mean - &sb.mean;
    let two_sided = diff.dot(&diff).double_value(&[])
        + sa.cov.trace().double_value(&[])
        + sb.cov.trace().double_value(&[])
        - 2.0 * sv.sum(tch::Kind::Double).double_value(&[]);
    let low = PreparedReference::new(&sb)
        .unwrap()
        .distance_to_features_in(&a, TraceForm::LowRank)
        .unwrap();
    let rel = (low - two_sided).abs() / two_sided;
    println!("d2048 low-rank {low:.12} two-sided {two_sided:.12} rel {rel:.3e}");
    assert!(rel < 1e-9, "{low} vs {two_sided} (rel {rel:.3e})");
}
