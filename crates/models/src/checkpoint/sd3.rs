//! The SD3 original / single-file layout (`joint_blocks.N.{x_block,context_block}...`, fused
//! qkv, (shift, scale) final modulations), mapped to and from flowscale's diffusers keys.

use super::StateDict;
use crate::backbone::Backbone;
use crate::builder::ParamInfo;
use crate::config::{MmditConfig, QK_NORM_RMS};
use crate::error::{KeyReport, ModelError, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use tch::Tensor;

/// The prefix SD3 single-file checkpoints put before the MMDiT keys.
pub const SD3_PREFIX: &str = "model.diffusion_model.";

/// How a diffusers tensor relates to its SD3 counterpart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The same tensor.
    Whole,
    /// Chunk `i` of 3 along dim 0 of a fused qkv tensor.
    Qkv(i64),
    /// The two halves along dim 0 swapped: SD3 (shift, scale) vs diffusers (scale, shift).
    Swapped,
}

fn rename_linear_group(rest: &str, pairs: &[(&str, &str)]) -> Option<String> {
    pairs.iter().find_map(|(from, to)| {
        rest.strip_prefix(from)
            .and_then(|suffix| suffix.strip_prefix('.'))
            .map(|leaf| format!("{to}.{leaf}"))
    })
}

/// The SD3 key and part of a diffusers key of a model with `depth` blocks.
pub fn sd3_key(key: &str, depth: i64) -> Option<(String, Part)> {
    let whole = |k: String| Some((k, Part::Whole));
    if key == "pos_embed.pos_embed" {
        return whole("pos_embed".into());
    }
    if let Some(leaf) = key.strip_prefix("pos_embed.proj.") {
        return whole(format!("x_embedder.proj.{leaf}"));
    }
    if let Some(rest) = key.strip_prefix("time_text_embed.") {
        let k = rename_linear_group(
            rest,
            &[
                ("timestep_embedder.linear_1", "t_embedder.mlp.0"),
                ("timestep_embedder.linear_2", "t_embedder.mlp.2"),
                ("text_embedder.linear_1", "y_embedder.mlp.0"),
                ("text_embedder.linear_2", "y_embedder.mlp.2"),
            ],
        )?;
        return whole(k);
    }
    if key.starts_with("context_embedder.") {
        return whole(key.to_owned());
    }
    if let Some(leaf) = key.strip_prefix("proj_out.") {
        return whole(format!("final_layer.linear.{leaf}"));
    }
    if let Some(leaf) = key.strip_prefix("norm_out.linear.") {
        return Some((
            format!("final_layer.adaLN_modulation.1.{leaf}"),
            Part::Swapped,
        ));
    }
    let rest = key.strip_prefix("transformer_blocks.")?;
    let (index, rest) = rest.split_once('.')?;
    let i: i64 = index.parse().ok()?;
    let x = format!("joint_blocks.{i}.x_block");
    let c = format!("joint_blocks.{i}.context_block");
    let (_, leaf) = rest.rsplit_once('.')?;
    let module = &rest[..rest.len() - leaf.len() - 1];
    let qkv = |stream: &str, j: i64| Some((format!("{stream}.attn.qkv.{leaf}"), Part::Qkv(j)));
    match module {
        "attn.to_q" => qkv(&x, 0),
        "attn.to_k" => qkv(&x, 1),
        "attn.to_v" => qkv(&x, 2),
        "attn.add_q_proj" => qkv(&c, 0),
        "attn.add_k_proj" => qkv(&c, 1),
        "attn.add_v_proj" => qkv(&c, 2),
        "attn.norm_q" => whole(format!("{x}.attn.ln_q.{leaf}")),
        "attn.norm_k" => whole(format!("{x}.attn.ln_k.{leaf}")),
        "attn.norm_added_q" => whole(format!("{c}.attn.ln_q.{leaf}")),
        "attn.norm_added_k" => whole(format!("{c}.attn.ln_k.{leaf}")),
        "attn.to_out.0" => whole(format!("{x}.attn.proj.{leaf}")),
        "attn.to_add_out" => whole(format!("{c}.attn.proj.{leaf}")),
        "norm1.linear" => whole(format!("{x}.adaLN_modulation.1.{leaf}")),
        "norm1_context.linear" => {
            let part = if i == depth - 1 {
                Part::Swapped
            } else {
                Part::Whole
            };
            Some((format!("{c}.adaLN_modulation.1.{leaf}"), part))
        }
        "ff.net.0.proj" => whole(format!("{x}.mlp.fc1.{leaf}")),
        "ff.net.2" => whole(format!("{x}.mlp.fc2.{leaf}")),
        "ff_context.net.0.proj" => whole(format!("{c}.mlp.fc1.{leaf}")),
        "ff_context.net.2" => whole(format!("{c}.mlp.fc2.{leaf}")),
        _ => None,
    }
}

/// One SD3 tensor and the diffusers entries it holds (one, or three for a fused qkv).
struct Group {
    parts: Vec<(i64, ParamInfo)>,
    swapped: bool,
}

fn groups(config: &MmditConfig) -> Result<BTreeMap<String, Group>> {
    let mut out: BTreeMap<String, Group> = BTreeMap::new();
    for info in Backbone::layout(config)? {
        let (sd3, part) = sd3_key(&info.key, config.num_layers).ok_or_else(|| {
            ModelError::Config(format!("no SD3 name for diffusers key {}", info.key))
        })?;
        let g = out.entry(sd3).or_insert(Group {
            parts: Vec::new(),
            swapped: false,
        });
        match part {
            Part::Qkv(j) => g.parts.push((j, info)),
            Part::Whole => g.parts.push((0, info)),
            Part::Swapped => {
                g.swapped = true;
                g.parts.push((0, info));
            }
        }
    }
    for g in out.values_mut() {
        g.parts.sort_by_key(|(j, _)| *j);
    }
    Ok(out)
}

fn swap_halves(t: &Tensor) -> Result<Tensor> {
    let halves = t.f_chunk(2, 0)?;
    Ok(Tensor::f_cat(&[&halves[1], &halves[0]], 0)?)
}

/// Converts a diffusers-keyed state into SD3 keys (without prefix).
pub fn to_sd3(config: &MmditConfig, state: &StateDict) -> Result<StateDict> {
    let mut out = StateDict::new();
    let mut report = KeyReport::default();
    for (sd3, g) in groups(config)? {
        let mut tensors = Vec::new();
        for (_, info) in &g.parts {
            match state.get(&info.key) {
                Some(t) => tensors.push(t.shallow_clone()),
                None => report.missing.push(info.key.clone()),
            }
        }
        if tensors.len() != g.parts.len() {
            continue;
        }
        let t = if tensors.len() == 1 {
            tensors.remove(0)
        } else {
            Tensor::f_cat(&tensors, 0)?
        };
        let t = if g.swapped { swap_halves(&t)? } else { t };
        out.insert(sd3, t);
    }
    if !report.is_empty() {
        return Err(ModelError::Keys {
            path: "<state>".into(),
            report,
        });
    }
    Ok(out)
}

/// Converts an SD3-keyed state (prefix already stripped) into diffusers keys, checking every
/// key and shape; errors name the SD3 keys.
pub fn from_sd3(config: &MmditConfig, mut state: StateDict, path: &Path) -> Result<StateDict> {
    let mut out = StateDict::new();
    let mut report = KeyReport::default();
    for (sd3, g) in groups(config)? {
        let Some(t) = state.remove(&sd3) else {
            report.missing.push(sd3);
            continue;
        };
        let mut want = g.parts[0].1.shape.clone();
        if let Some(first) = want.first_mut() {
            *first *= g.parts.len() as i64;
        }
        if t.size() != want {
            report.mis_shaped.push((sd3, want, t.size()));
            continue;
        }
        let t = if g.swapped { swap_halves(&t)? } else { t };
        if g.parts.len() == 1 {
            out.insert(g.parts[0].1.key.clone(), t);
        } else {
            let chunks = t.f_chunk(g.parts.len() as i64, 0)?;
            for ((_, info), c) in g.parts.iter().zip(chunks) {
                out.insert(info.key.clone(), c.f_contiguous()?);
            }
        }
    }
    report.unexpected = state.into_keys().collect();
    if !report.is_empty() {
        return Err(ModelError::Keys {
            path: path.to_owned(),
            report,
        });
    }
    Ok(out)
}

/// Strips the `model.diffusion_model.` prefix if every key has it.
pub fn strip_prefix(state: StateDict) -> StateDict {
    if !state.is_empty() && state.keys().all(|k| k.starts_with(SD3_PREFIX)) {
        state
            .into_iter()
            .map(|(k, v)| (k[SD3_PREFIX.len()..].to_owned(), v))
            .collect()
    } else {
        state
    }
}

fn dims(state: &StateDict, key: &str, path: &Path) -> Result<Vec<i64>> {
    state.get(key).map(|t| t.size()).ok_or_else(|| {
        ModelError::format(
            path,
            format!("SD3 checkpoint lacks {key}, needed to infer the architecture"),
        )
    })
}

/// Infers the architecture of an SD3-layout state (prefix stripped) from tensor shapes. The head
/// width is read from the QK-norm scales when present, else from `head_dim` if given, else it is
/// SD3's 64 (the SD3 layout does not record the head count). `sample_size` (which only scales a
/// freshly computed position table) comes from `metadata` when flowscale wrote the file, else
/// SD3's 128.
pub fn infer_config(
    state: &StateDict,
    metadata: &HashMap<String, String>,
    head_dim: Option<i64>,
    path: &Path,
) -> Result<MmditConfig> {
    if let Some(json) = metadata.get(super::CONFIG_METADATA_KEY) {
        return MmditConfig::from_json(json);
    }
    if let Some(k) = state.keys().find(|k| k.contains(".attn2.")) {
        return Err(ModelError::format(
            path,
            format!("{k}: SD3.5 MMDiT-X dual attention is not supported"),
        ));
    }
    let ctx = dims(state, "context_embedder.weight", path)?;
    let patch = dims(state, "x_embedder.proj.weight", path)?;
    let pooled = dims(state, "y_embedder.mlp.0.weight", path)?;
    let fin = dims(state, "final_layer.linear.weight", path)?;
    let pos = dims(state, "pos_embed", path)?;
    let depth = state
        .keys()
        .filter_map(|k| k.strip_prefix("joint_blocks."))
        .filter_map(|k| k.split('.').next()?.parse::<i64>().ok())
        .max()
        .map(|m| m + 1)
        .ok_or_else(|| ModelError::format(path, "no joint_blocks.* keys: not an SD3 MMDiT"))?;
    let hidden = ctx[0];
    let head_dim = state
        .get("joint_blocks.0.x_block.attn.ln_q.weight")
        .map(|t| t.size()[0])
        .or(head_dim)
        .unwrap_or(64);
    if hidden % head_dim != 0 {
        return Err(ModelError::format(
            path,
            format!(
                "hidden size {hidden} is not a multiple of the head width {head_dim}; the SD3 \
                 layout does not record the head count, so pass the head width"
            ),
        ));
    }
    let p = patch.get(2).copied().unwrap_or(1);
    let m = (pos.get(1).copied().unwrap_or(0) as f64).sqrt().round() as i64;
    let cfg = MmditConfig {
        sample_size: 128,
        patch_size: p,
        in_channels: patch[1],
        num_layers: depth,
        attention_head_dim: head_dim,
        num_attention_heads: hidden / head_dim.max(1),
        joint_attention_dim: ctx[1],
        caption_projection_dim: hidden,
        pooled_projection_dim: pooled[1],
        out_channels: Some(fin[0] / (p * p).max(1)),
        pos_embed_max_size: Some(m),
        qk_norm: state
            .contains_key("joint_blocks.0.x_block.attn.ln_q.weight")
            .then(|| QK_NORM_RMS.to_owned()),
        dual_attention_layers: Vec::new(),
        position_grid: crate::position_grid::PositionGrid::Table,
        backbone: Default::default(),
        context_split: None,
    };
    cfg.validate()?;
    Ok(cfg)
}
