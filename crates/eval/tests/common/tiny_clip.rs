//! A tiny random `CLIPModel` folder with CLIP's full 49408-token vocabulary (so the real BPE
//! merges tokenize for it), written into a temporary folder: the committed parity fixture has a
//! 1000-token vocabulary and cannot take real captions.

use flowscale_encoders::clip::{ClipModel, ClipModelConfig, ClipVisionConfig};
use flowscale_encoders::text::{frozen, ClipTextConfig};
use std::path::{Path, PathBuf};
use tch::{nn, Device, Tensor};

pub fn tiny_clip(dir: &Path) -> PathBuf {
    let out = dir.join("tiny-clip");
    std::fs::create_dir_all(&out).unwrap();
    let config = ClipModelConfig {
        text_config: ClipTextConfig {
            vocab_size: 49408,
            hidden_size: 8,
            intermediate_size: 16,
            projection_dim: 512,
            num_hidden_layers: 2,
            num_attention_heads: 2,
            max_position_embeddings: 77,
            hidden_act: "quick_gelu".into(),
            layer_norm_eps: 1e-5,
            eos_token_id: 2,
        },
        vision_config: ClipVisionConfig {
            hidden_size: 8,
            intermediate_size: 16,
            projection_dim: 512,
            num_hidden_layers: 2,
            num_attention_heads: 2,
            num_channels: 3,
            image_size: 32,
            patch_size: 8,
            hidden_act: "quick_gelu".into(),
            layer_norm_eps: 1e-5,
        },
        projection_dim: 8,
    };
    let vs = nn::VarStore::new(Device::Cpu);
    ClipModel::new(&vs.root(), &config, &out.join("config.json")).unwrap();
    frozen::randomize(&vs, 5, 0.2).unwrap();
    let vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    Tensor::write_safetensors(&vars, out.join("model.safetensors")).unwrap();
    std::fs::write(
        out.join("config.json"),
        serde_json::to_string_pretty(&config).unwrap(),
    )
    .unwrap();
    out
}

pub fn bpe() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../.assets/clip/bpe_simple_vocab_16e6.txt.gz")
}
