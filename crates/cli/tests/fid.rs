//! `flowscale fid A B` as a user runs it: on the committed feature sets of the Frechet parity
//! fixtures (crates/eval/tests/fixtures/frechet, scripts/fixtures/frechet_reference.py) and on
//! statistics written by pytorch-fid's method (scripts/fixtures/fid_stats_npz.py) and by the
//! command itself, the printed FID equals pytorch-fid's to 1e-6 relative; bad inputs are errors
//! naming the argument.

#[path = "../../../tests/support/skip.rs"]
mod skip;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tch::{Kind, Tensor};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../eval/tests/fixtures/frechet")
}

fn fixture(name: &str) -> String {
    fixtures().join(name).display().to_string()
}

fn expected(case: &str) -> f64 {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v[case]["fid"].as_f64().unwrap()
}

fn flowscale(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowscale"))
        .arg("fid")
        .args(args)
        .output()
        .expect("flowscale runs")
}

/// The value of the `FID:  <value>` line.
fn fid(args: &[&str]) -> f64 {
    let out = flowscale(args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let value = stdout
        .lines()
        .find_map(|l| l.strip_prefix("FID:  "))
        .unwrap_or_else(|| panic!("no FID line in {stdout:?}"));
    value.trim().parse().unwrap()
}

fn assert_close(case: &str, got: f64) {
    let want = expected(case);
    let rel = (got - want).abs() / want.abs();
    assert!(
        rel < 1e-6,
        "{case}: {got} vs pytorch-fid {want} (rel {rel:.3e})"
    );
}

/// The error message of a failing run.
fn error(args: &[&str]) -> String {
    let out = flowscale(args);
    assert!(!out.status.success(), "{args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn feature_files_match_pytorch_fid() {
    for case in ["small", "near_singular", "d2048"] {
        let (a, b) = (
            fixture(&format!("{case}_a.npy")),
            fixture(&format!("{case}_b.npy")),
        );
        assert_close(case, fid(&[&a, &b]));
        // Either order: FID is symmetric, and the prepared side changes with the order.
        assert_close(case, fid(&[&b, &a]));
    }
}

#[test]
fn pytorch_fid_statistics_match_pytorch_fid() {
    // Compressed, as `python -m pytorch_fid --save-stats` writes them.
    let (a, b) = (fixture("small_a_stats.npz"), fixture("small_b_stats.npz"));
    assert_close("small", fid(&[&a, &b]));
    assert_close("small", fid(&[&a, &fixture("small_b.npy")]));
}

#[test]
fn saved_statistics_give_the_same_fid() {
    let dir = tempfile::tempdir().unwrap();
    for case in ["small", "d2048"] {
        let mut stats = Vec::new();
        for side in ["a", "b"] {
            let out = dir.path().join(format!("{case}_{side}.npz"));
            let out_s = out.display().to_string();
            let input = fixture(&format!("{case}_{side}.npy"));
            let run = flowscale(&["--save-stats", &input, &out_s]);
            assert!(
                run.status.success(),
                "{}",
                String::from_utf8_lossy(&run.stderr)
            );
            let arrays = Tensor::read_npz(&out).unwrap();
            let d = if case == "small" { 16 } else { 2048 };
            let shapes: Vec<(String, Vec<i64>, Kind)> = arrays
                .iter()
                .map(|(k, t)| (k.clone(), t.size(), t.kind()))
                .collect();
            assert_eq!(
                shapes,
                vec![
                    ("mu".to_string(), vec![d], Kind::Double),
                    ("sigma".to_string(), vec![d, d], Kind::Double)
                ]
            );
            stats.push(out_s);
        }
        assert_close(case, fid(&[&stats[0], &stats[1]]));
        assert_close(case, fid(&[&stats[0], &fixture(&format!("{case}_b.npy"))]));
    }
}

/// Two folders of 16 committed PNGs (RGB and grey) through the FID Inception network: pytorch-fid's
/// number with the same weights (crates/eval/tests/fixtures/inception, to 1e-3 as there, since the
/// features agree to 1e-4), and a folder's saved statistics give the same FID as the folder.
#[test]
fn image_folders_match_pytorch_fid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let weights = root.join(".assets/fid-inception/default_1.pt");
    if !weights.is_file() {
        skip::skipped(
            "image_folders_match_pytorch_fid",
            "no FID Inception weights (scripts/setup)",
        );
        return;
    }
    let inception = root.join("crates/eval/tests/fixtures/inception");
    let text = std::fs::read_to_string(inception.join("expected.json")).unwrap();
    let want = serde_json::from_str::<serde_json::Value>(&text).unwrap()["fid_a_b"]
        .as_f64()
        .unwrap();
    let (a, b) = (
        inception.join("a").display().to_string(),
        inception.join("b").display().to_string(),
    );
    let w = weights.display().to_string();
    let common = ["--weights", &w, "--device", "cpu", "--batch-size", "8"];
    let got = fid(&[&[a.as_str(), &b][..], &common].concat());
    assert!((got - want).abs() < 1e-3, "{got} vs pytorch-fid {want}");

    let dir = tempfile::tempdir().unwrap();
    let stats = dir.path().join("a.npz").display().to_string();
    let run = flowscale(&[&["--save-stats", a.as_str(), &stats][..], &common].concat());
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let again = fid(&[&[stats.as_str(), &b][..], &common].concat());
    assert!((again - got).abs() < 1e-9 * got, "{again} vs {got}");
}

#[test]
fn bad_inputs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let small_a = fixture("small_a.npy");

    std::fs::write(path("feats.txt"), "1 2 3").unwrap();
    let e = error(&[&small_a, &path("feats.txt")]);
    assert!(
        e.contains("B ") && e.contains("feats.txt") && e.contains(".npy"),
        "{e}"
    );

    let e = error(&[&small_a, &fixture("d2048_b.npy")]);
    assert!(
        e.contains("different feature dimensions (16 and 2048)"),
        "{e}"
    );

    Tensor::zeros([1, 16], (Kind::Float, tch::Device::Cpu))
        .write_npy(path("one.npy"))
        .unwrap();
    let e = error(&[&path("one.npy"), &small_a]);
    assert!(
        e.contains("A ") && e.contains("[1, 16]") && e.contains("n >= 2"),
        "{e}"
    );

    let nan = Tensor::ones([4, 16], (Kind::Float, tch::Device::Cpu));
    let _ = nan.get(2).get(3).fill_(f64::NAN);
    nan.write_npy(path("nan.npy")).unwrap();
    let e = error(&[&small_a, &path("nan.npy")]);
    assert!(e.contains("B ") && e.contains("1 NaN or infinite"), "{e}");

    Tensor::ones([4, 16], (Kind::Int64, tch::Device::Cpu))
        .write_npy(path("int.npy"))
        .unwrap();
    let e = error(&[&path("int.npy"), &small_a]);
    assert!(e.contains("A: ") && e.contains("dtype <i8"), "{e}");

    let mu = Tensor::zeros([16], (Kind::Double, tch::Device::Cpu));
    Tensor::write_npz(&[("mu", &mu)], path("mu_only.npz")).unwrap();
    let e = error(&[&small_a, &path("mu_only.npz")]);
    assert!(e.contains("B ") && e.contains("no array `sigma`"), "{e}");

    let sigma = Tensor::zeros([16, 15], (Kind::Double, tch::Device::Cpu));
    Tensor::write_npz(&[("mu", &mu), ("sigma", &sigma)], path("bad_sigma.npz")).unwrap();
    let e = error(&[&path("bad_sigma.npz"), &small_a]);
    assert!(
        e.contains("A ") && e.contains("sigma") && e.contains("[16, 16]"),
        "{e}"
    );

    std::fs::write(path("not_zip.npz"), "not a zip").unwrap();
    let e = error(&[&path("not_zip.npz"), &small_a]);
    assert!(e.contains("A: ") && e.contains("not an .npz"), "{e}");

    // A folder needs the Inception weights; their absence names the file and where to get them.
    std::fs::create_dir(path("images")).unwrap();
    let e = error(&[&path("images"), &small_a, "--weights", &path("missing.pt")]);
    assert!(
        e.contains("missing.pt") && e.contains("scripts/setup"),
        "{e}"
    );

    let e = error(&["--save-stats", &small_a, &path("out.txt")]);
    assert!(e.contains("out.txt") && e.contains(".npz"), "{e}");
}
