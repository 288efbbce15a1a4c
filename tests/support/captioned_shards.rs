//! A synthetic captioned latent-shard set for the text-to-image tests of several crates: the
//! caption decides the image's colour (red, green or blue), so prompt adherence is measurable
//! without CLIP weights. Identity "autoencoder": the latents are 3 x 8 x 8 pixels. Captions,
//! MiniLM embeddings (fp16), colour labels and a second caption field are each optional.
//! Included with `#[path = "../../../tests/support/captioned_shards.rs"] mod captioned_shards;`.
// Each test binary uses part of it.
#![allow(dead_code)]

use flowscale_data::shards::{
    AutoencoderInfo, LatentDtype, SampleCaption, ShardEntry, ShardManifest, Splits,
    TextEmbeddingInfo,
};
use flowscale_data::{LatentSample, LatentShardWriter};
use flowscale_encoders::text::{TextEncoder, TextEncoderConfig};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

pub const SIDE: i64 = 8;
pub const TOKENS: i64 = 8;
pub const COLOURS: [&str; 3] = ["red", "green", "blue"];
/// Training captions; the held-out prompts below use none of these phrasings.
pub const TEMPLATES: [&str; 4] = [
    "a {} square",
    "a picture that is entirely {}",
    "{} paint",
    "the colour {}",
];
pub const SYNTHETIC: &str = "a flat image filled with the colour {}";

pub fn assets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.assets")
}

/// A MiniLM text config with 8 context tokens (written once per test directory).
pub fn text_config(dir: &Path) -> PathBuf {
    let minilm = assets().join("all-minilm-l6-v2");
    assert!(
        minilm.is_dir(),
        "{} missing: run scripts/setup",
        minilm.display()
    );
    let path = dir.join("minilm.toml");
    std::fs::write(
        &path,
        format!(
            "encoder = \"minilm\"\n[minilm]\npath = \"{}\"\ntokens = {TOKENS}\n",
            minilm.display()
        ),
    )
    .unwrap();
    path
}

pub fn encoder(config: &Path) -> TextEncoder {
    TextEncoder::load(&TextEncoderConfig::load(config).unwrap(), Device::Cpu).unwrap()
}

#[derive(Clone, Copy)]
pub struct SetKind {
    pub labels: bool,
    pub captions: bool,
    pub embeddings: bool,
    pub synthetic: bool,
}

/// Sample `n`: colour `n % 3`, caption template `n / 3 % 4`.
pub fn caption(n: usize, template: &str) -> String {
    template.replace("{}", COLOURS[n % 3])
}

/// An image of colour `c`: that channel high, the others low, a little noise.
pub fn image(c: usize) -> Tensor {
    let mut levels = [-0.7f32; 3];
    levels[c] = 0.7;
    let base = Tensor::from_slice(&levels)
        .view([3, 1, 1])
        .expand([3, SIDE, SIDE], true);
    (base + Tensor::randn([3, SIDE, SIDE], (Kind::Float, Device::Cpu)) * 0.1).clamp(-1.0, 1.0)
}

fn write_shards(
    dir: &Path,
    prefix: &str,
    counts: &[usize],
    kind: SetKind,
    enc: Option<&TextEncoder>,
    first: usize,
) -> Vec<ShardEntry> {
    let mut n = first;
    counts
        .iter()
        .enumerate()
        .map(|(i, &count)| {
            let file = format!("{prefix}-{i:06}.tar");
            let mut w = LatentShardWriter::create(&dir.join(&file)).unwrap();
            for _ in 0..count {
                let mean = image(n % 3);
                let std = Tensor::full([3, SIDE, SIDE], 0.02, (Kind::Float, Device::Cpu));
                let mut fields = vec![("txt", caption(n, TEMPLATES[n / 3 % 4]))];
                if kind.synthetic {
                    fields.push(("syn", caption(n, SYNTHETIC)));
                }
                let captions = if kind.captions || kind.embeddings {
                    fields
                        .into_iter()
                        .map(|(field, text)| SampleCaption {
                            field: field.into(),
                            embedding: kind.embeddings.then(|| {
                                let e = enc.unwrap().encode(&[text.as_str()]).unwrap();
                                (
                                    e.context.get(0).to_kind(Kind::Half),
                                    e.pooled.get(0).to_kind(Kind::Half),
                                )
                            }),
                            text: kind.captions.then_some(text),
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                w.append(&LatentSample {
                    key: format!("{prefix}{n:05}"),
                    flip: None,
                    mean: mean.to_kind(Kind::Half),
                    std: std.to_kind(Kind::Half),
                    label: kind.labels.then_some((n % 3) as i64),
                    captions,
                })
                .unwrap();
                n += 1;
            }
            ShardEntry {
                file,
                samples: count as u64,
                bytes: w.finish().unwrap(),
                bucket: None,
            }
        })
        .collect()
}

/// A shard set of 96 training and 12 val samples.
pub fn write_set(dir: &Path, kind: SetKind, text_config: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let enc = kind.embeddings.then(|| encoder(text_config));
    let (train, val) = flowscale_formulations::with_torch_seed(3, || {
        (
            write_shards(dir, "train", &[32, 32, 32], kind, enc.as_ref(), 0),
            write_shards(dir, "val", &[12], kind, enc.as_ref(), 1008),
        )
    });
    let text = enc.as_ref().map(|e| {
        let (tokens, width, pooled) = e.shapes();
        TextEmbeddingInfo {
            encoder: text_config.display().to_string(),
            context_shape: [tokens, width],
            pooled_shape: [pooled],
            sources: e.source_spans(),
        }
    });
    let mut fields = vec!["txt".to_owned()];
    if kind.synthetic {
        fields.push("syn".into());
    }
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
        latent_stats: None,
        has_labels: kind.labels,
        class_names: if kind.labels {
            COLOURS.iter().map(|c| c.to_string()).collect()
        } else {
            Vec::new()
        },
        has_captions: kind.captions,
        text,
        caption_fields: if kind.captions || kind.embeddings {
            fields
        } else {
            Vec::new()
        },
        buckets: Vec::new(),
        splits: Splits { train, val },
    }
    .save(dir)
    .unwrap();
}

/// Caption text only: a text run encodes it during training.
pub const CAPTIONS_ONLY: SetKind = SetKind {
    labels: false,
    captions: true,
    embeddings: false,
    synthetic: false,
};

/// Class labels only: a class-conditional latent run.
pub const LABELS_ONLY: SetKind = SetKind {
    labels: true,
    captions: false,
    embeddings: false,
    synthetic: false,
};

/// Labels, caption text and stored embeddings.
pub const BOTH: SetKind = SetKind {
    labels: true,
    captions: true,
    embeddings: true,
    synthetic: false,
};

/// Mean colour of each image `[N, 3, H, W]`: the index of its brightest channel.
pub fn colours(images: &Tensor) -> Vec<usize> {
    let means = images.mean_dim(&[2i64, 3][..], false, Kind::Float);
    Vec::<i64>::try_from(means.argmax(1, false))
        .unwrap()
        .into_iter()
        .map(|c| c as usize)
        .collect()
}

/// `--set` overrides that train a run on the set in `shards` with the MiniLM shapes of
/// [`text_config`]; the run records `text_config` as its text encoder (training reads the stored
/// embeddings when the set has them).
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
