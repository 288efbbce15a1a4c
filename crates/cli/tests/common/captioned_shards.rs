//! A tiny captioned latent-shard set for text runs (the approach of
//! crates/train/tests/text_runs.rs): 3 x 8 x 8 "latents" under an identity autoencoder whose
//! colour the caption names, with the caption text and its MiniLM embedding stored, and the
//! MiniLM text config (8 context tokens) that embedded them. Needs the MiniLM weights that
//! scripts/setup fetches into .assets.

use flowscale_data::shards::{
    AutoencoderInfo, LatentDtype, SampleCaption, ShardEntry, ShardManifest, Splits,
    TextEmbeddingInfo,
};
use flowscale_data::{LatentSample, LatentShardWriter};
use flowscale_encoders::text::{TextEncoder, TextEncoderConfig};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

pub const SIDE: i64 = 8;
const COLOURS: [&str; 3] = ["red", "green", "blue"];
const TEMPLATES: [&str; 2] = ["a {} square", "the colour {}"];

/// A MiniLM text config with 8 context tokens, written into `dir`.
pub fn minilm_config(dir: &Path) -> PathBuf {
    let minilm = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.assets/all-minilm-l6-v2");
    assert!(
        minilm.is_dir(),
        "{} missing: run scripts/setup",
        minilm.display()
    );
    let path = dir.join("minilm.toml");
    std::fs::write(
        &path,
        format!(
            "encoder = \"minilm\"\n[minilm]\npath = \"{}\"\ntokens = 8\n",
            minilm.display()
        ),
    )
    .unwrap();
    path
}

/// An image of colour `c`: that channel high, the others low, a little noise.
fn image(c: usize) -> Tensor {
    let mut levels = [-0.7f32; 3];
    levels[c] = 0.7;
    let base = Tensor::from_slice(&levels)
        .view([3, 1, 1])
        .expand([3, SIDE, SIDE], true);
    (base + Tensor::randn([3, SIDE, SIDE], (Kind::Float, Device::Cpu)) * 0.1).clamp(-1.0, 1.0)
}

fn write_shard(
    dir: &Path,
    file: &str,
    first: usize,
    count: usize,
    enc: &TextEncoder,
) -> ShardEntry {
    let mut w = LatentShardWriter::create(&dir.join(file)).unwrap();
    for n in first..first + count {
        let text = TEMPLATES[n / 3 % 2].replace("{}", COLOURS[n % 3]);
        let e = enc.encode(&[text.as_str()]).unwrap();
        w.append(&LatentSample {
            key: format!("s{n:05}"),
            flip: None,
            mean: image(n % 3).to_kind(Kind::Half),
            std: Tensor::full([3, SIDE, SIDE], 0.02, (Kind::Half, Device::Cpu)),
            label: None,
            captions: vec![SampleCaption {
                field: "txt".into(),
                embedding: Some((
                    e.context.get(0).to_kind(Kind::Half),
                    e.pooled.get(0).to_kind(Kind::Half),
                )),
                text: Some(text),
            }],
        })
        .unwrap();
    }
    ShardEntry {
        file: file.into(),
        samples: count as u64,
        bytes: w.finish().unwrap(),
    }
}

/// 48 training and 12 val samples with captions and their embeddings by `text_config`.
pub fn write_captioned_set(dir: &Path, text_config: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let enc =
        TextEncoder::load(&TextEncoderConfig::load(text_config).unwrap(), Device::Cpu).unwrap();
    let (train, val) = flowscale_formulations::with_torch_seed(3, || {
        (
            vec![write_shard(dir, "train-000000.tar", 0, 48, &enc)],
            vec![write_shard(dir, "val-000000.tar", 1000, 12, &enc)],
        )
    });
    let (tokens, width, pooled) = enc.shapes();
    ShardManifest {
        format_version: 1,
        autoencoder: AutoencoderInfo {
            kind: "identity".into(),
            name: "pixels".into(),
            weights_sha256: None,
            latent_channels: 3,
            downsample_factor: 1,
            scaling_factor: 1.0,
            shift_factor: 0.0,
        },
        resolution: SIDE as u32,
        latent_shape: [3, SIDE, SIDE],
        latent_dtype: LatentDtype::Float16,
        has_flip: false,
        has_labels: false,
        class_names: Vec::new(),
        has_captions: true,
        text: Some(TextEmbeddingInfo {
            encoder: text_config.display().to_string(),
            context_shape: [tokens, width],
            pooled_shape: [pooled],
            sources: enc.source_spans(),
        }),
        caption_fields: vec!["txt".into()],
        splits: Splits { train, val },
    }
    .save(dir)
    .unwrap();
}

/// `--set` overrides of the tiny run that train it on the set in `shards` with MiniLM's shapes;
/// the run records `text_config` as its text encoder (training reads the stored embeddings).
pub fn text_run_overrides(shards: &Path, text_config: &Path) -> Vec<String> {
    let mut o: Vec<String> = [
        "data.dataset=latent-shards",
        "data.resolution=8",
        "data.shuffle_buffer=16",
        "data.workers=1",
        "model.patch_size=2",
        "conditioning.provider=text",
        "conditioning.context_tokens=8",
        "conditioning.context_dim=384",
        "conditioning.pooled_dim=384",
    ]
    .map(str::to_owned)
    .to_vec();
    o.push(format!("data.path={:?}", shards.display().to_string()));
    o.push(format!(
        "conditioning.text_encoder={:?}",
        text_config.display().to_string()
    ));
    o
}
