//! Which config changes a resumed run accepts.
//!
//! A checkpoint is only meaningful with the config that produced it. On `--resume` the resolved
//! config saved in the run directory is compared, key by key, with the new one. Keys that only
//! steer *when* things happen or *for how long* (the step budget, hook schedules, logging,
//! retention, the device) may change; every other difference is an error that lists the keys
//! with both values. The config hash in a checkpoint covers exactly the keys that must match.

use crate::config::RunConfig;
use crate::error::{Result, TrainError};
use std::collections::BTreeMap;

/// Dotted-key prefixes that may differ between a run and its resumption.
pub const RESUMABLE_CHANGES: &[&str] = &[
    "run.device",
    "run.dist_timeout_s",
    "run.dist_backend",
    // How the shard loader works, not what it yields.
    "data.workers",
    "data.prefetch",
    "data.skip_bad_shards",
    "train.steps",
    // A memory setting: the gradients agree up to float rounding.
    "train.activation_checkpointing",
    // How the step is launched: the same arithmetic, replayed from a CUDA graph.
    "train.cuda_graph",
    "validation.every",
    // Read only before the first step.
    "validation.at_start",
    "samples.",
    "checkpoint.",
    "logging.",
];

fn may_change(key: &str) -> bool {
    RESUMABLE_CHANGES
        .iter()
        .any(|p| key == *p || (p.ends_with('.') && key.starts_with(p)))
}

/// The config as `dotted.key -> TOML-rendered value`.
pub fn flatten(config: &RunConfig) -> Result<BTreeMap<String, String>> {
    let value = toml::Value::try_from(config)
        .map_err(|e| TrainError::Invalid(format!("cannot serialise the config: {e}")))?;
    let mut out = BTreeMap::new();
    walk("", &value, &mut out);
    Ok(out)
}

fn walk(prefix: &str, value: &toml::Value, out: &mut BTreeMap<String, String>) {
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                walk(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_owned(), other.to_string());
        }
    }
}

/// Keys that differ and may not, as `key: old -> new` lines.
pub fn incompatible_changes(old: &RunConfig, new: &RunConfig) -> Result<Vec<String>> {
    let (a, b) = (flatten(old)?, flatten(new)?);
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let absent = "(absent)".to_owned();
    Ok(keys
        .into_iter()
        .filter(|k| !may_change(k))
        .filter_map(|k| {
            let (x, y) = (a.get(k).unwrap_or(&absent), b.get(k).unwrap_or(&absent));
            (x != y).then(|| format!("{k}: {x} -> {y}"))
        })
        .collect())
}

/// FNV-1a 64 over the keys that must match on resume: equal hashes, compatible configs.
pub fn config_hash(config: &RunConfig) -> Result<String> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, v) in flatten(config)? {
        if may_change(&k) {
            continue;
        }
        for byte in k.bytes().chain([b'=']).chain(v.bytes()).chain([b'\n']) {
            h ^= u64::from(byte);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    Ok(format!("{h:016x}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;
    use std::path::Path;

    const BASE: &str = r#"
[run]
name = "r"
[data]
dataset = "fashion-mnist"
resolution = 32
[train]
steps = 10
batch_size = 4
"#;

    fn cfg(overrides: &[&str]) -> RunConfig {
        let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        load_str(BASE, Path::new("t.toml"), &o).unwrap()
    }

    #[test]
    fn schedule_changes_are_allowed_and_keep_the_hash() {
        let a = cfg(&[]);
        let b = cfg(&[
            "train.steps=20",
            "logging.every=5",
            "checkpoint.keep_last=9",
        ]);
        assert!(incompatible_changes(&a, &b).unwrap().is_empty());
        assert_eq!(config_hash(&a).unwrap(), config_hash(&b).unwrap());
    }

    /// "auto" is resolved before a run records its config: its hash is that of the number it
    /// resolves to, and a numeric shift hashes as it did before the key took "auto" (the base
    /// resolution, which only "auto" reads, drops out).
    #[test]
    fn an_auto_shift_hashes_as_its_alpha() {
        let resolved = |o: &[&str]| cfg(o).with_resolved_shift().unwrap();
        let auto = resolved(&[
            "data.resolution=64",
            "formulation.shift=\"auto\"",
            "formulation.shift_base_resolution=32",
        ]);
        let two = cfg(&["data.resolution=64", "formulation.shift=2"]);
        assert_eq!(config_hash(&auto).unwrap(), config_hash(&two).unwrap());
        let three = cfg(&["data.resolution=64", "formulation.shift=3"]);
        assert_ne!(config_hash(&auto).unwrap(), config_hash(&three).unwrap());
        let flat = flatten(&two).unwrap();
        assert_eq!(flat["formulation.shift"], "2.0");
        assert!(!flat.contains_key("formulation.shift_base_resolution"));
        let with_base = resolved(&[
            "data.resolution=64",
            "formulation.shift=2",
            "formulation.shift_base_resolution=512",
        ]);
        assert_eq!(config_hash(&with_base).unwrap(), config_hash(&two).unwrap());
    }

    #[test]
    fn model_and_optimiser_changes_are_named() {
        let a = cfg(&[]);
        let b = cfg(&["optim.lr=0.5", "model.depth=3"]);
        let diff = incompatible_changes(&a, &b).unwrap();
        assert_eq!(diff.len(), 2, "{diff:?}");
        assert!(diff[0].starts_with("model.depth: 2 -> 3"), "{diff:?}");
        assert!(diff[1].starts_with("optim.lr: 0.0001 -> 0.5"), "{diff:?}");
        assert_ne!(config_hash(&a).unwrap(), config_hash(&b).unwrap());
    }
}
