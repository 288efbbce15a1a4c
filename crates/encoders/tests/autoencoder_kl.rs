//! AutoencoderKL against diffusers 0.35.2 at small random configs (fixtures from
//! `scripts/fixtures/autoencoder_kl_reference.py`): the SD3 VAE's shape (16 channels, shift and
//! scale, no quant convs) and an SD/SDXL-style one (4 channels, quant convs, no mid attention).

mod common;

use flowscale_encoders::autoencoders::kl::parameter_shapes;
use flowscale_encoders::autoencoders::{Autoencoder, AutoencoderKL, AutoencoderKLConfig};
use flowscale_encoders::weights::{self, StateDict};
use flowscale_encoders::EncoderError;
use flowscale_models::checkpoint::safetensors_io;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/autoencoders")
}

fn io(name: &str) -> StateDict {
    weights::read_file(
        &fixtures().join(format!("{name}_io.safetensors")),
        Kind::Float,
        Device::Cpu,
    )
    .unwrap()
}

fn load(dir: &Path) -> AutoencoderKL {
    AutoencoderKL::load(dir, Kind::Float, Device::Cpu).unwrap()
}

fn close(name: &str, what: &str, got: &Tensor, want: &Tensor, tol: f64) {
    let err = common::max_abs_diff(got, want);
    println!("{name} {what}: max error {err:.3e}");
    assert!(err < tol, "{name} {what}: max error {err}");
}

fn parity(name: &str) {
    tch::set_num_threads(1);
    let vae = load(&fixtures().join(name));
    let io = io(name);
    let raw = vae.raw_posterior(&io["pixels"]).unwrap();
    close(name, "raw mean", &raw.mean, &io["raw_mean"], 1e-4);
    close(name, "raw std", &raw.std, &io["raw_std"], 1e-4);
    let post = vae.encode(&io["pixels"]).unwrap();
    close(name, "mean", &post.mean, &io["mean"], 1e-4);
    close(name, "std", &post.std, &io["std"], 1e-4);
    let decoded = vae.decode(&io["mean"]).unwrap();
    close(name, "decoded", &decoded, &io["decoded"], 1e-4);
}

#[test]
fn sd3_shaped_vae_matches_diffusers() {
    parity("kl_sd3_small");
}

#[test]
fn sd_shaped_vae_with_quant_convs_matches_diffusers() {
    parity("kl_sd_small");
}

#[test]
fn model_space_is_shifted_and_scaled() {
    let vae = load(&fixtures().join("kl_sd3_small"));
    let c = vae.config();
    assert_eq!((c.scaling_factor, c.shift_factor), (1.5305, Some(0.0609)));
    assert_eq!(vae.latent_channels(), 16);
    assert_eq!(vae.downsample_factor(), 8);
    let io = io("kl_sd3_small");
    let raw = vae.raw_posterior(&io["pixels"]).unwrap();
    let post = vae.encode(&io["pixels"]).unwrap();
    let expected = (&raw.mean - 0.0609) * 1.5305;
    close(
        "kl_sd3_small",
        "model-space mean",
        &post.mean,
        &expected,
        1e-6,
    );
    close(
        "kl_sd3_small",
        "model-space std",
        &post.std,
        &(&raw.std * 1.5305),
        1e-6,
    );
    // decode inverts the map: decoding model-space latents equals decoding the raw ones.
    let a = vae.decode(&post.mean).unwrap();
    let b = vae.decode_raw(&raw.mean).unwrap();
    close("kl_sd3_small", "decode vs decode_raw", &a, &b, 1e-5);
}

#[test]
fn chunked_encode_and_decode_equal_whole_batches() {
    let vae = load(&fixtures().join("kl_sd_small"));
    let pixels = &io("kl_sd_small")["pixels"];
    assert_eq!(pixels.size()[0], 3);
    let whole = vae.encode(pixels).unwrap();
    let chunked = vae.encode_chunked(pixels, 2).unwrap();
    close(
        "kl_sd_small",
        "chunked mean",
        &chunked.mean,
        &whole.mean,
        1e-5,
    );
    close("kl_sd_small", "chunked std", &chunked.std, &whole.std, 1e-5);
    let a = vae.decode(&whole.mean).unwrap();
    let b = vae.decode_chunked(&whole.mean, 1).unwrap();
    close("kl_sd_small", "chunked decode", &b, &a, 1e-5);
    assert!(vae.encode_chunked(pixels, 0).is_err());
}

#[test]
fn bfloat16_weights_run_close_to_float32() {
    let io = io("kl_sd3_small");
    let vae = AutoencoderKL::load(
        &fixtures().join("kl_sd3_small"),
        Kind::BFloat16,
        Device::Cpu,
    )
    .unwrap();
    assert_eq!(vae.compute_kind(), Kind::BFloat16);
    let post = vae.encode(&io["pixels"]).unwrap();
    assert_eq!(post.mean.kind(), Kind::Float);
    let err = common::max_abs_diff(&post.mean, &io["mean"]);
    assert!(err < 0.1, "bf16 error {err}");
    // force_upcast: float16 requests run in float32, as diffusers does.
    let half =
        AutoencoderKL::load(&fixtures().join("kl_sd3_small"), Kind::Half, Device::Cpu).unwrap();
    assert_eq!(half.compute_kind(), Kind::Float);
}

#[test]
fn sharded_folder_and_legacy_attention_names_load() {
    let src = fixtures().join("kl_sd3_small");
    let state =
        weights::read_folder_named(&src, weights::DIFFUSERS_WEIGHTS, Kind::Float, Device::Cpu)
            .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::copy(src.join("config.json"), dir.join("config.json")).unwrap();
    // Two shards and an index, with the mid-block attention under its pre-2023 names.
    let legacy = |k: &str| {
        k.replace(".to_q.", ".query.")
            .replace(".to_k.", ".key.")
            .replace(".to_v.", ".value.")
            .replace(".to_out.0.", ".proj_attn.")
    };
    let mut shards: [Vec<(String, Tensor)>; 2] = [Vec::new(), Vec::new()];
    let mut map = serde_json::Map::new();
    for (k, t) in &state {
        let i = usize::from(k.starts_with("decoder."));
        let name = format!("diffusion_pytorch_model-0000{}-of-00002.safetensors", i + 1);
        map.insert(legacy(k), name.into());
        shards[i].push((legacy(k), t.shallow_clone()));
    }
    assert!(map.contains_key("encoder.mid_block.attentions.0.query.weight"));
    for (i, shard) in shards.iter().enumerate() {
        let name = format!("diffusion_pytorch_model-0000{}-of-00002.safetensors", i + 1);
        safetensors_io::write(&dir.join(name), shard, None).unwrap();
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": map});
    std::fs::write(
        dir.join("diffusion_pytorch_model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    let vae = load(dir);
    let io = io("kl_sd3_small");
    let post = vae.encode(&io["pixels"]).unwrap();
    close("sharded", "mean", &post.mean, &io["mean"], 1e-4);
    close(
        "sharded",
        "decoded",
        &vae.decode(&io["mean"]).unwrap(),
        &io["decoded"],
        1e-4,
    );
}

/// The presets build exactly diffusers' full-size key layout (`presets.json` holds the keys and
/// shapes of diffusers' models built from the published SD3, SDXL and SD 1.x VAE configs).
#[test]
fn presets_have_diffusers_full_size_keys() {
    let text = std::fs::read_to_string(fixtures().join("presets.json")).unwrap();
    let presets: serde_json::Value = serde_json::from_str(&text).unwrap();
    for (name, config) in [
        ("sd3", AutoencoderKLConfig::sd3()),
        ("sdxl", AutoencoderKLConfig::sdxl()),
        ("sd1", AutoencoderKLConfig::sd1()),
    ] {
        let want = &presets[name];
        let fields = want["config"].as_object().unwrap();
        let ours = serde_json::to_value(&config).unwrap();
        for (field, value) in fields {
            assert_eq!(&ours[field], value, "{name}: config field {field}");
        }
        let shapes = parameter_shapes(&config).unwrap();
        let want_keys = want["keys"].as_object().unwrap();
        let missing: Vec<&String> = want_keys
            .keys()
            .filter(|k| !shapes.contains_key(*k))
            .collect();
        let extra: Vec<&String> = shapes
            .keys()
            .filter(|k| !want_keys.contains_key(*k))
            .collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{name}: missing {missing:?}, extra {extra:?}"
        );
        for (k, shape) in &shapes {
            let w: Vec<i64> = serde_json::from_value(want_keys[k].clone()).unwrap();
            assert_eq!(&w, shape, "{name}: {k}");
        }
        let total: i64 = shapes.values().map(|s| s.iter().product::<i64>()).sum();
        assert_eq!(total, want["parameters"].as_i64().unwrap(), "{name}");
    }
}

fn copy_fixture(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixtures().join(name)).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, tmp.path().join(p.file_name().unwrap())).unwrap();
    }
    tmp
}

#[test]
fn weights_hash_covers_weights_and_config_but_not_location() {
    let a = load(&fixtures().join("kl_sd_small"))
        .weights_sha256()
        .unwrap();
    assert_eq!(a.len(), 64);
    let copy = copy_fixture("kl_sd_small");
    assert_eq!(load(copy.path()).weights_sha256().unwrap(), a);
    let config = copy.path().join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("0.13025", "0.2")).unwrap();
    let changed = load(copy.path());
    assert_eq!(changed.config().scaling_factor, 0.2);
    assert_ne!(changed.weights_sha256().unwrap(), a);
}

fn load_err(dir: &Path) -> String {
    match AutoencoderKL::load(dir, Kind::Float, Device::Cpu) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn missing_config_is_named() {
    let copy = copy_fixture("kl_sd_small");
    std::fs::remove_file(copy.path().join("config.json")).unwrap();
    let e = load_err(copy.path());
    assert!(e.contains("config.json") && e.contains("not found"), "{e}");
}

#[test]
fn missing_weights_are_named() {
    let copy = copy_fixture("kl_sd_small");
    std::fs::remove_file(copy.path().join("diffusion_pytorch_model.safetensors")).unwrap();
    let e = load_err(copy.path());
    assert!(e.contains("diffusion_pytorch_model.safetensors"), "{e}");
}

fn rewrite_weights(dir: &Path, edit: impl FnOnce(&mut StateDict)) {
    let file = dir.join("diffusion_pytorch_model.safetensors");
    let mut state = weights::read_file(&file, Kind::Float, Device::Cpu).unwrap();
    edit(&mut state);
    let entries: Vec<(String, Tensor)> = state.into_iter().collect();
    safetensors_io::write(&file, &entries, None).unwrap();
}

#[test]
fn wrong_key_and_wrong_shape_are_named() {
    let copy = copy_fixture("kl_sd_small");
    rewrite_weights(copy.path(), |s| {
        let t = s.remove("decoder.conv_out.bias").unwrap();
        s.insert("decoder.conv_out.bias_typo".into(), t);
        s.insert(
            "quant_conv.weight".into(),
            Tensor::zeros([8, 8, 3, 3], (Kind::Float, Device::Cpu)),
        );
    });
    match AutoencoderKL::load(copy.path(), Kind::Float, Device::Cpu) {
        Err(EncoderError::Keys { report, .. }) => {
            assert_eq!(report.missing, vec!["decoder.conv_out.bias".to_string()]);
            assert_eq!(
                report.unexpected,
                vec!["decoder.conv_out.bias_typo".to_string()]
            );
            assert_eq!(report.mis_shaped.len(), 1);
            assert_eq!(report.mis_shaped[0].0, "quant_conv.weight");
        }
        other => panic!("expected a key report, got {other:?}"),
    }
    let e = load_err(copy.path());
    assert!(
        e.contains("decoder.conv_out.bias_typo") && e.contains("quant_conv.weight"),
        "{e}"
    );
}

#[test]
fn unsupported_config_fields_are_named() {
    for (from, to, named) in [
        (
            "\"UpDecoderBlock2D\"",
            "\"AttnUpDecoderBlock2D\"",
            "AttnUpDecoderBlock2D",
        ),
        ("\"silu\"", "\"tanh\"", "act_fn"),
        (
            "\"norm_num_groups\": 4",
            "\"norm_num_groups\": 3",
            "norm_num_groups",
        ),
        ("\"AutoencoderKL\"", "\"AutoencoderTiny\"", "_class_name"),
    ] {
        let copy = copy_fixture("kl_sd_small");
        let config = copy.path().join("config.json");
        let text = std::fs::read_to_string(&config).unwrap();
        assert!(text.contains(from), "fixture config lacks {from}");
        std::fs::write(&config, text.replacen(from, to, 1)).unwrap();
        let e = load_err(copy.path());
        assert!(e.contains("config.json") && e.contains(named), "{e}");
    }
}

#[test]
fn bad_inputs_are_refused() {
    let vae = load(&fixtures().join("kl_sd3_small"));
    let bad_pixels = [
        Tensor::zeros([1, 3, 20, 24], (Kind::Float, Device::Cpu)),
        Tensor::zeros([1, 4, 24, 24], (Kind::Float, Device::Cpu)),
        Tensor::zeros([3, 24, 24], (Kind::Float, Device::Cpu)),
    ];
    for p in &bad_pixels {
        let e = vae.encode(p).unwrap_err().to_string();
        assert!(e.contains("multiples of 8"), "{e}");
    }
    let e = vae
        .decode(&Tensor::zeros([1, 4, 3, 3], (Kind::Float, Device::Cpu)))
        .unwrap_err()
        .to_string();
    assert!(e.contains("[B, 16, h, w]"), "{e}");
}

#[test]
fn per_channel_latent_statistics_normalise() {
    let copy = copy_fixture("kl_sd_small");
    let config = copy.path().join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text
        .replace(
            "\"latents_mean\": null",
            "\"latents_mean\": [0.1, -0.2, 0.3, 0.0]",
        )
        .replace(
            "\"latents_std\": null",
            "\"latents_std\": [2.0, 0.5, 1.0, 4.0]",
        );
    std::fs::write(&config, text).unwrap();
    let vae = load(copy.path());
    let pixels = &io("kl_sd_small")["pixels"];
    let raw = vae.raw_posterior(pixels).unwrap();
    let post = vae.encode(pixels).unwrap();
    let view = |v: &[f64]| {
        Tensor::from_slice(v)
            .to_kind(Kind::Float)
            .view([1, 4, 1, 1])
    };
    let mean = view(&[0.1, -0.2, 0.3, 0.0]);
    let scale = view(&[0.13025 / 2.0, 0.13025 / 0.5, 0.13025, 0.13025 / 4.0]);
    close(
        "stats",
        "mean",
        &post.mean,
        &((&raw.mean - &mean) * &scale),
        1e-6,
    );
    close("stats", "std", &post.std, &(&raw.std * &scale), 1e-6);
    close(
        "stats",
        "decode",
        &vae.decode(&post.mean).unwrap(),
        &vae.decode_raw(&raw.mean).unwrap(),
        1e-5,
    );
}

#[test]
fn log_variance_is_clamped_to_diffusers_range() {
    let copy = copy_fixture("kl_sd_small");
    // quant_conv's log-variance rows (channels 4..8) set to constants 100, -100, 5, 0.
    rewrite_weights(copy.path(), |s| {
        let w = s.get_mut("quant_conv.weight").unwrap();
        let _ = w.narrow(0, 4, 4).fill_(0.0);
        let b = s.get_mut("quant_conv.bias").unwrap();
        b.narrow(0, 4, 4)
            .copy_(&Tensor::from_slice(&[100.0f32, -100.0, 5.0, 0.0]));
    });
    let vae = load(copy.path());
    let raw = vae.raw_posterior(&io("kl_sd_small")["pixels"]).unwrap();
    let per_channel: Vec<f64> = (0..4)
        .map(|c| raw.std.select(1, c).mean(Kind::Double).double_value(&[]))
        .collect();
    let want = [10f64.exp(), (-15f64).exp(), 2.5f64.exp(), 1.0];
    for (got, want) in per_channel.iter().zip(want) {
        assert!((got / want - 1.0).abs() < 1e-5, "std {got} vs {want}");
    }
}
