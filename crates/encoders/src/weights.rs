//! Hugging Face model folders: `config.json` plus `model.safetensors`, or shards listed in
//! `model.safetensors.index.json`. Files are memory-mapped; floating tensors are converted to the
//! requested kind, integer buffers (`position_ids`) are kept as they are.

use crate::error::{EncoderError, KeyReport, Result};
use flowscale_models::checkpoint::safetensors_io;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use tch::{nn, Device, Kind, Tensor};

pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// Tensors keyed by checkpoint name.
pub type StateDict = BTreeMap<String, Tensor>;

/// Reads and parses `<dir>/config.json` into `T`; errors name the file.
pub fn read_config<T: serde::de::DeserializeOwned>(dir: &Path) -> Result<T> {
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| EncoderError::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| EncoderError::format(&path, e.to_string()))
}

/// Reads every tensor of one safetensors file (the models crate's memory-mapped reader).
pub fn read_file(path: &Path, kind: Kind, device: Device) -> Result<StateDict> {
    Ok(safetensors_io::read(path, kind, device)?
        .tensors
        .into_iter()
        .collect())
}

/// The file names of a folder's weights: one safetensors file, or shards listed in an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightNames {
    pub single: &'static str,
    pub index: &'static str,
}

/// Hugging Face transformers' names.
pub const HF_WEIGHTS: WeightNames = WeightNames {
    single: WEIGHTS_FILE,
    index: INDEX_FILE,
};

/// diffusers' names (models such as `AutoencoderKL`).
pub const DIFFUSERS_WEIGHTS: WeightNames = WeightNames {
    single: "diffusion_pytorch_model.safetensors",
    index: "diffusion_pytorch_model.safetensors.index.json",
};

/// The weight files of a folder: the single file if present, else the shards of the index
/// (sorted, with their tensor-to-shard map).
fn locate(dir: &Path, names: WeightNames) -> Result<Located> {
    let single = dir.join(names.single);
    let index = dir.join(names.index);
    if single.exists() {
        return Ok(Located::Single(single));
    }
    if !index.exists() {
        return Err(EncoderError::format(
            dir,
            format!("neither {} nor {} found", names.single, names.index),
        ));
    }
    let text = std::fs::read_to_string(&index).map_err(|e| EncoderError::io(&index, e))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| EncoderError::format(&index, format!("bad JSON: {e}")))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| EncoderError::format(&index, "no `weight_map` object"))?;
    let mut weight_map = BTreeMap::new();
    for (name, shard) in map {
        let shard = shard.as_str().ok_or_else(|| {
            EncoderError::format(
                &index,
                format!("weight_map entry {name} is not a file name"),
            )
        })?;
        weight_map.insert(name.clone(), shard.to_owned());
    }
    let mut shards: Vec<String> = weight_map.values().cloned().collect();
    shards.sort_unstable();
    shards.dedup();
    Ok(Located::Sharded {
        index,
        shards,
        weight_map,
    })
}

enum Located {
    Single(PathBuf),
    Sharded {
        index: PathBuf,
        shards: Vec<String>,
        weight_map: BTreeMap<String, String>,
    },
}

/// Every file that holds a folder's weights (the single file, or the index and its shards):
/// what a fingerprint of the weights must cover.
pub fn weight_files(dir: &Path, names: WeightNames) -> Result<Vec<PathBuf>> {
    Ok(match locate(dir, names)? {
        Located::Single(path) => vec![path],
        Located::Sharded { index, shards, .. } => std::iter::once(index)
            .chain(shards.iter().map(|s| dir.join(s)))
            .collect(),
    })
}

/// Reads the weights of a Hugging Face folder, single file or sharded.
pub fn read_folder(dir: &Path, kind: Kind, device: Device) -> Result<StateDict> {
    read_folder_named(dir, HF_WEIGHTS, kind, device)
}

/// Reads the weights of a folder whose files are called `names`, single file or sharded; a
/// shard holding a tensor the index puts elsewhere is an error naming both.
pub fn read_folder_named(
    dir: &Path,
    names: WeightNames,
    kind: Kind,
    device: Device,
) -> Result<StateDict> {
    match locate(dir, names)? {
        Located::Single(path) => read_file(&path, kind, device),
        Located::Sharded {
            shards, weight_map, ..
        } => {
            let mut state = StateDict::new();
            for shard in shards {
                let shard_path = dir.join(&shard);
                for (name, t) in read_file(&shard_path, kind, device)? {
                    if weight_map.get(&name) != Some(&shard) {
                        return Err(EncoderError::format(
                            &shard_path,
                            format!(
                                "tensor {name} is not listed for this shard in {}",
                                names.index
                            ),
                        ));
                    }
                    state.insert(name, t);
                }
            }
            Ok(state)
        }
    }
}

/// Missing, unexpected and mis-shaped keys of `state` against the variables of `vs`. Keys in
/// `ignored` (buffers the reference implementation stores but recomputes, such as
/// `position_ids`) are neither required nor unexpected.
pub fn check_keys(vs: &nn::VarStore, state: &StateDict, ignored: &[&str]) -> KeyReport {
    let vars = vs.variables();
    let ignored: HashSet<&str> = ignored.iter().copied().collect();
    let mut report = KeyReport::default();
    for (key, var) in &vars {
        match state.get(key) {
            None => report.missing.push(key.clone()),
            Some(t) if t.size() != var.size() => {
                report.mis_shaped.push((key.clone(), var.size(), t.size()))
            }
            Some(_) => {}
        }
    }
    report.missing.sort();
    report.unexpected = state
        .keys()
        .filter(|k| !vars.contains_key(*k) && !ignored.contains(k.as_str()))
        .cloned()
        .collect();
    report
}

/// Copies `state` into the variables of `vs` after checking every key and shape; `path` names
/// the checkpoint in errors.
pub fn copy_into(
    vs: &nn::VarStore,
    state: &StateDict,
    ignored: &[&str],
    path: &Path,
) -> Result<()> {
    let report = check_keys(vs, state, ignored);
    if !report.is_empty() {
        return Err(EncoderError::Keys {
            path: path.to_owned(),
            report,
        });
    }
    let vars = vs.variables();
    tch::no_grad(|| -> Result<()> {
        for (k, dst) in &vars {
            let src = &state[k];
            let mut dst = dst.shallow_clone();
            dst.f_copy_(&src.f_to_kind(dst.kind())?)?;
        }
        Ok(())
    })
}

/// `dir/name` if it exists, else an error naming it.
pub fn require_file(dir: &Path, name: &str) -> Result<PathBuf> {
    let p = dir.join(name);
    if p.is_file() {
        Ok(p)
    } else {
        Err(EncoderError::format(&p, "file not found"))
    }
}
