//! The diffusers `SD3Transformer2DModel` folder: `config.json` plus
//! `diffusion_pytorch_model.safetensors`, or shards listed in
//! `diffusion_pytorch_model.safetensors.index.json`. flowscale's folder for the other backbones
//! is the same with a `config.json` that names the backbone.

use super::{safetensors_io, StateDict};
use crate::config::MmditConfig;
use crate::error::{ModelError, Result};
use std::collections::BTreeMap;
use std::path::Path;
use tch::{Device, Kind, Tensor};

pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "diffusion_pytorch_model.safetensors";
pub const INDEX_FILE: &str = "diffusion_pytorch_model.safetensors.index.json";

/// Reads a diffusers folder; the architecture comes from its `config.json`.
pub fn read(dir: &Path, kind: Kind, device: Device) -> Result<(MmditConfig, StateDict)> {
    let config_path = dir.join(CONFIG_FILE);
    let text =
        std::fs::read_to_string(&config_path).map_err(|e| ModelError::io(&config_path, e))?;
    let config = MmditConfig::from_json(&text).map_err(|e| match e {
        ModelError::Config(m) => ModelError::format(&config_path, m),
        e => e,
    })?;
    let single = dir.join(WEIGHTS_FILE);
    let index = dir.join(INDEX_FILE);
    let mut state = StateDict::new();
    if single.exists() {
        state.extend(safetensors_io::read(&single, kind, device)?.tensors);
    } else if index.exists() {
        let text = std::fs::read_to_string(&index).map_err(|e| ModelError::io(&index, e))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| ModelError::format(&index, format!("bad JSON: {e}")))?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| ModelError::format(&index, "no `weight_map` object"))?;
        let mut shards: Vec<&str> = map.values().filter_map(|v| v.as_str()).collect();
        shards.sort_unstable();
        shards.dedup();
        for shard in shards {
            let contents = safetensors_io::read(&dir.join(shard), kind, device)?;
            for (name, t) in contents.tensors {
                if map.get(&name).and_then(|v| v.as_str()) != Some(shard) {
                    return Err(ModelError::format(
                        dir.join(shard),
                        format!("tensor {name} is not listed for this shard in {INDEX_FILE}"),
                    ));
                }
                state.insert(name, t);
            }
        }
    } else {
        return Err(ModelError::format(
            dir,
            format!("neither {WEIGHTS_FILE} nor {INDEX_FILE} found"),
        ));
    }
    Ok((config, state))
}

fn tensor_bytes(t: &Tensor) -> usize {
    t.numel() * t.kind().elt_size_in_bytes()
}

/// Writes a diffusers folder. With `max_shard_bytes`, tensors are split into shards of at most
/// that size (one tensor per shard at least) named like diffusers' and listed in an index.
pub fn write(
    dir: &Path,
    config: &MmditConfig,
    state: &StateDict,
    max_shard_bytes: Option<usize>,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    let entries: Vec<(String, Tensor)> = state
        .iter()
        .map(|(k, t)| (k.clone(), t.shallow_clone()))
        .collect();
    match max_shard_bytes {
        None => safetensors_io::write(&dir.join(WEIGHTS_FILE), &entries, None)?,
        Some(limit) => {
            let mut shards: Vec<Vec<(String, Tensor)>> = vec![Vec::new()];
            let mut size = 0usize;
            for (k, t) in entries {
                let b = tensor_bytes(&t);
                if size + b > limit && shards.last().is_some_and(|s| !s.is_empty()) {
                    shards.push(Vec::new());
                    size = 0;
                }
                size += b;
                if let Some(s) = shards.last_mut() {
                    s.push((k, t));
                }
            }
            let n = shards.len();
            let mut weight_map = BTreeMap::new();
            let mut total = 0usize;
            for (i, shard) in shards.iter().enumerate() {
                let name = format!(
                    "diffusion_pytorch_model-{:05}-of-{:05}.safetensors",
                    i + 1,
                    n
                );
                for (k, t) in shard {
                    weight_map.insert(k.clone(), name.clone());
                    total += tensor_bytes(t);
                }
                safetensors_io::write(&dir.join(&name), shard, None)?;
            }
            let index = serde_json::json!({
                "metadata": {"total_size": total},
                "weight_map": weight_map,
            });
            let text = serde_json::to_string_pretty(&index)
                .map_err(|e| ModelError::format(dir, format!("index JSON: {e}")))?;
            safetensors_io::write_atomic(&dir.join(INDEX_FILE), text.as_bytes())?;
        }
    }
    let json = config.to_json()?;
    safetensors_io::write_atomic(&dir.join(CONFIG_FILE), json.as_bytes())
}
