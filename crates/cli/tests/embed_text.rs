//! `flowscale embed-text` with the real MiniLM (`.assets/`, from scripts/setup), and its output
//! driving `flowscale sample`.

use flowscale_models::{save_mmdit, Backbone, Layout, MmditConfig};
use std::path::{Path, PathBuf};
use std::process::Command;
use tch::{nn, Device, Kind, Tensor};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tensors(path: &Path) -> Vec<(String, Tensor)> {
    Tensor::read_safetensors(path).expect("read safetensors")
}

fn get(all: &[(String, Tensor)], key: &str) -> Tensor {
    all.iter()
        .find(|(k, _)| k == key)
        .map(|(_, t)| t.shallow_clone())
        .unwrap_or_else(|| panic!("no {key}"))
}

#[test]
fn embed_text_writes_context_and_pooled_that_sample_reads() {
    let assets = root().join(".assets/all-minilm-l6-v2");
    assert!(
        assets.is_dir(),
        "run scripts/setup: {} missing",
        assets.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("minilm.toml");
    std::fs::write(
        &config,
        format!(
            "encoder = \"minilm\"\n[minilm]\npath = \"{}\"\ntokens = 16\n",
            assets.display()
        ),
    )
    .unwrap();
    let prompts = root().join("crates/encoders/tests/fixtures/text/prompts.txt");
    let cond = tmp.path().join("cond.safetensors");
    let out = Command::new(env!("CARGO_BIN_EXE_flowscale"))
        .args(["embed-text", "--config"])
        .arg(&config)
        .arg("--prompts")
        .arg(&prompts)
        .args(["--batch-size", "5", "--out"])
        .arg(&cond)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let all = tensors(&cond);
    let context = get(&all, "context");
    let pooled = get(&all, "pooled");
    assert_eq!(context.size(), vec![16, 16, 384]);
    assert_eq!(pooled.size(), vec![16, 384]);
    let expected = get(
        &tensors(&root().join("crates/encoders/tests/fixtures/text/minilm_expected.safetensors")),
        "embeddings",
    );
    let err = (&pooled - &expected).abs().max().double_value(&[]);
    assert!(err < 1e-4, "pooled vs sentence-transformers: {err}");

    // A tiny MMDiT whose context and pooled widths are MiniLM's samples with it.
    let mut cfg = MmditConfig::preset("tiny-d2").unwrap();
    cfg.joint_attention_dim = 384;
    cfg.pooled_projection_dim = 384;
    let vs = nn::VarStore::new(Device::Cpu);
    let _model = Backbone::new(&vs.root(), &cfg).unwrap();
    let ckpt = tmp.path().join("mmdit");
    save_mmdit(&vs, &cfg, &ckpt, Layout::Diffusers).unwrap();
    let latents = tmp.path().join("latents.safetensors");
    let out = Command::new(env!("CARGO_BIN_EXE_flowscale"))
        .args(["sample", "--checkpoint"])
        .arg(&ckpt)
        .arg("--cond")
        .arg(&cond)
        .args([
            "--seed",
            "1",
            "--latent-size",
            "8",
            "8",
            "--steps",
            "2",
            "--out",
        ])
        .arg(&latents)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{text}");
    let l = get(&tensors(&latents), "latents");
    assert_eq!(l.size()[0], 16);
    assert_eq!(l.kind(), Kind::Float);
}

#[test]
fn embed_text_errors_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("bad.toml");
    std::fs::write(&config, "encoder = \"minilm\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_flowscale"))
        .args(["embed-text", "--config"])
        .arg(&config)
        .args(["--prompts", "/nonexistent/prompts.txt", "--out"])
        .arg(tmp.path().join("o.safetensors"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        text.contains("bad.toml") && text.contains("[minilm]"),
        "{text}"
    );
}

#[test]
fn embed_text_takes_set_overrides_of_the_text_config() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("t.toml");
    std::fs::write(
        &config,
        "encoder = \"minilm\"\n[minilm]\npath = \"/nope\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_flowscale"))
        .args(["embed-text", "--config"])
        .arg(&config)
        .args([
            "--set",
            "minilm.tokens=0",
            "--prompts",
            "/nonexistent/p.txt",
            "--out",
        ])
        .arg(tmp.path().join("o.safetensors"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        text.contains("t.toml") && text.contains("key `minilm.tokens`") && text.contains("--set"),
        "{text}"
    );
}
