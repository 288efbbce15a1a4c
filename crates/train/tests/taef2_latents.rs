//! Precompute with the real TAEF2 autoencoder, then train on its latents: the sample grids are
//! decoded by TAEF2 back to pixels at the data resolution, and a folder whose weights differ
//! from the ones that encoded the shards is refused. Skipped when `../shared/assets/taef2` is
//! missing.

#[path = "../../../tests/support/skip.rs"]
mod skip;

#[path = "common/class_pngs.rs"]
mod class_pngs;
mod common;

use class_pngs::png;
use common::{quiet, tiny_config};
use flowscale_data::precompute::{precompute, PrecomputeConfig, ShardShare, Silent};
use flowscale_train::train;
use std::path::{Path, PathBuf};

fn taef2_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/assets/taef2");
    dir.join("taef2_encoder.safetensors")
        .exists()
        .then_some(dir)
}

#[test]
fn taef2_shards_train_and_decode_their_sample_grids() {
    let Some(taef2) = taef2_dir() else {
        skip::skipped(
            "taef2_shards_train_and_decode_their_sample_grids",
            "TAEF2 assets not found (../shared/assets/taef2)",
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("images");
    for i in 0..12 {
        png(&images.join(format!("dark/{i}.png")), 0, i);
        png(&images.join(format!("light/{i}.png")), 1, i);
    }
    let shards = tmp.path().join("shards");
    let text = format!(
        r#"
        [source]
        kind = "folder"
        path = "{}"
        labels_from_subfolders = true
        [preprocess]
        resolution = 32
        flip = true
        [autoencoder]
        kind = "taef2"
        path = "{}"
        [output]
        dir = "{}"
        samples_per_shard = 6
        val_samples = 6
        "#,
        images.display(),
        taef2.display(),
        shards.display()
    );
    let cfg = PrecomputeConfig::from_toml(&text, Path::new("taef2.toml")).unwrap();
    let m = precompute(&cfg, ShardShare::default(), &Silent)
        .unwrap()
        .manifest
        .unwrap();
    assert_eq!(m.latent_shape, [32, 4, 4]);

    let path = format!("data.path={:?}", shards.display().to_string());
    let run = |name: &str, extra: &[&str]| {
        let mut o = vec![
            "data.dataset=latent-shards",
            path.as_str(),
            "data.resolution=32",
            "data.shuffle_buffer=6",
            "model.patch_size=2",
            "validation.samples=6",
        ];
        o.extend_from_slice(extra);
        train(tiny_config(tmp.path(), name, &o), quiet())
    };
    let state = run("taef2", &[]).unwrap();
    assert_eq!(state.step, 6);
    // Grids hold decoded 32x32 RGB images (2 classes, one each), not 4x4 latents.
    let grids: Vec<PathBuf> = std::fs::read_dir(tmp.path().join("taef2/samples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .collect();
    assert!(!grids.is_empty());
    for g in &grids {
        let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(g).unwrap()));
        let info = decoder.read_info().unwrap().info().clone();
        assert_eq!(info.color_type, png::ColorType::Rgb, "{}", g.display());
        // One column, two rows of 32-pixel tiles with 2-pixel borders.
        assert_eq!((info.width, info.height), (36, 70), "{}", g.display());
    }

    // Other weights under the recorded name: refused, naming both hashes.
    let other = tmp.path().join("other-taef2");
    std::fs::create_dir_all(&other).unwrap();
    for f in ["taef2_encoder.safetensors", "taef2_decoder.safetensors"] {
        let mut bytes = std::fs::read(taef2.join(f)).unwrap();
        if f.contains("decoder") {
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
        }
        std::fs::write(other.join(f), bytes).unwrap();
    }
    let ae = format!("data.autoencoder_path={:?}", other.display().to_string());
    let err = run("other", &[ae.as_str()]).err().unwrap().to_string();
    assert!(
        err.contains("weights sha256")
            && err.contains(m.autoencoder.weights_sha256.as_deref().unwrap()),
        "{err}"
    );
}
