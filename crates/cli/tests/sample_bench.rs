//! `flowscale sample` against a diffusers Euler loop, and `flowscale bench params`.

use std::path::PathBuf;
use std::process::Command;
use tch::{Device, Kind, Tensor};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../models/tests/fixtures/mmdit")
        .join(name)
}

fn tensor(path: &std::path::Path, key: &str) -> Tensor {
    let all = Tensor::read_safetensors(path).expect("read safetensors");
    all.into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, t)| t.to_kind(Kind::Float).to_device(Device::Cpu))
        .unwrap_or_else(|| panic!("{key} not in {}", path.display()))
}

#[test]
fn sample_reproduces_the_diffusers_euler_loop() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("latents.safetensors");
    // Settings of sample_settings.json: 4 steps, CFG 4, shift 3, the qknorm checkpoint.
    for checkpoint in ["qknorm", "qknorm_sd3.safetensors"] {
        let status = Command::new(env!("CARGO_BIN_EXE_flowscale"))
            .args(["sample", "--checkpoint"])
            .arg(fixture(checkpoint))
            .arg("--cond")
            .arg(fixture("sample_cond.safetensors"))
            .arg("--noise")
            .arg(fixture("sample_noise.safetensors"))
            .args(["--steps", "4", "--cfg", "4", "--shift", "3", "--out"])
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success());
        let ours = tensor(&out, "latents");
        let want = tensor(&fixture("sample_expected.safetensors"), "latents");
        let err = (&ours - &want).abs().max().double_value(&[]);
        println!("{checkpoint}: max |flowscale - diffusers| = {err:.3e}");
        assert!(err < 1e-3, "{checkpoint}: {err}");
        // Sampling moved far from the noise, so the comparison is meaningful.
        let noise = tensor(&fixture("sample_noise.safetensors"), "noise");
        assert!((&ours - &noise).abs().max().double_value(&[]) > 0.5);
    }
}

#[test]
fn sample_with_seed_is_deterministic_and_rejects_missing_noise() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |name: &str, extra: &[&str]| {
        let out = tmp.path().join(name);
        let ok = Command::new(env!("CARGO_BIN_EXE_flowscale"))
            .args(["sample", "--checkpoint"])
            .arg(fixture("qknorm"))
            .arg("--cond")
            .arg(fixture("sample_cond.safetensors"))
            .args(["--steps", "2", "--cfg", "1", "--out"])
            .arg(&out)
            .args(extra)
            .output()
            .unwrap();
        (ok.status.success(), out)
    };
    let (ok1, a) = run("a.safetensors", &["--seed", "5", "--latent-size", "4", "6"]);
    let (ok2, b) = run("b.safetensors", &["--seed", "5", "--latent-size", "4", "6"]);
    assert!(ok1 && ok2);
    let (a, b) = (tensor(&a, "latents"), tensor(&b, "latents"));
    assert_eq!(a.size(), [1, 4, 4, 6]);
    assert!(a.equal(&b));
    let (ok3, _) = run("c.safetensors", &[]);
    assert!(!ok3, "no noise and no seed must fail");
}

#[test]
fn bench_params_prints_the_reference_counts() {
    for (depth, count) in [("24", "2,028,328,000"), ("38", "8,056,617,792")] {
        let out = Command::new(env!("CARGO_BIN_EXE_flowscale"))
            .args(["bench", "params", "--depth", depth])
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.contains(&format!("parameters (trainable): {count}")),
            "{text}"
        );
        assert!(text.contains("convention"));
    }
}

#[test]
fn a_latent_size_beyond_the_position_table_is_refused_before_drawing_noise() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_flowscale"))
        .args(["sample", "--checkpoint"])
        .arg(fixture("qknorm"))
        .arg("--cond")
        .arg(fixture("sample_cond.safetensors"))
        .args(["--steps", "2", "--cfg", "1", "--seed", "1"])
        .args(["--latent-size", "1000000", "1000000", "--out"])
        .arg(tmp.path().join("x.safetensors"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // A clean error naming the limit, not a libtorch abort (which has no exit code 1).
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--latent-size") && err.contains("pos_embed_max_size"),
        "{err}"
    );
}
