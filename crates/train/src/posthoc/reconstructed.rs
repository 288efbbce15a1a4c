//! Reconstructed averages as ordinary checkpoints, so `flowscale eval`, `generate` and `export`
//! read them like any other: `<run>/posthoc/reconstructed/std-<std>/step-XXXXXXXXX/`, written by
//! the checkpoint store (checksums, atomic rename), holding the run checkpoint's raw weights
//! (`model`, with the fixed buffers), its classic EMAs (`ema-<decay>`), `config.json` and state,
//! and the reconstruction as `phema-<std>` (`--weights phema` or `phema:<std>`), plus
//! `reconstruction.json` (coefficients per snapshot and the fit's residual). No optimiser state:
//! a reconstructed checkpoint is for use, not for resuming.

use super::reconstruct::Reconstruction;
use super::snapshots::posthoc_dir;
use super::tracker::power_ema_group_name;
use crate::checkpoint::{CheckpointStore, LoadedCheckpoint};
use crate::error::{Result, TrainError};
use crate::state::TrainState;
use serde_json::json;
use std::path::{Path, PathBuf};
use tch::Tensor;

const RECONSTRUCTED: &str = "reconstructed";

/// `<run>/posthoc/reconstructed/std-<std>`: the checkpoint store of one std.
pub fn reconstructed_store_dir(run_dir: &Path, std: f64) -> PathBuf {
    posthoc_dir(run_dir)
        .join(RECONSTRUCTED)
        .join(format!("std-{std}"))
}

/// The run directory of a checkpoint folder at `<run>/posthoc/reconstructed/std-<std>/step-N`.
pub fn run_dir_of_reconstructed(checkpoint_dir: &Path) -> Option<PathBuf> {
    let store = checkpoint_dir.parent()?;
    let reconstructed = store.parent()?;
    let posthoc = reconstructed.parent()?;
    let layout = store
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("std-"))
        && reconstructed
            .file_name()
            .is_some_and(|n| n == RECONSTRUCTED)
        && posthoc.file_name().is_some_and(|n| n == "posthoc");
    layout
        .then(|| posthoc.parent().map(Path::to_path_buf))
        .flatten()
}

/// The run's config.json is a few kB; anything far larger is not one.
const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// Writes `rec` as a checkpoint beside the tensors of run checkpoint `base` (same step).
pub fn write_checkpoint(
    run_dir: &Path,
    base: &LoadedCheckpoint<TrainState>,
    rec: &Reconstruction,
) -> Result<PathBuf> {
    if base.step != rec.step {
        return Err(TrainError::Invalid(format!(
            "{}: a checkpoint of step {}, the reconstruction is of step {}",
            base.dir.display(),
            base.step,
            rec.step
        )));
    }
    let mut names: Vec<&String> = base
        .groups
        .keys()
        .filter(|k| *k == "model" || k.starts_with("ema-"))
        .collect();
    names.sort();
    let mut groups: Vec<(String, Vec<(String, Tensor)>)> = names
        .into_iter()
        .map(|g| {
            let mut tensors: Vec<(String, Tensor)> = base.groups[g]
                .iter()
                .map(|(k, t)| (k.clone(), t.shallow_clone()))
                .collect();
            tensors.sort_by(|a, b| a.0.cmp(&b.0));
            (g.clone(), tensors)
        })
        .collect();
    groups.push((
        power_ema_group_name(rec.std),
        rec.tensors
            .iter()
            .map(|(k, t)| (k.clone(), t.shallow_clone()))
            .collect(),
    ));
    let refs: Vec<(&str, Vec<(String, Tensor)>)> = groups
        .iter()
        .map(|(n, t)| {
            let t = t.iter().map(|(k, v)| (k.clone(), v.shallow_clone()));
            (n.as_str(), t.collect())
        })
        .collect();
    let config_path = base.dir.join("config.json");
    let config = read_bounded(&config_path)?;
    let record_json = serde_json::to_vec_pretty(&record(rec))
        .map_err(|e| TrainError::Invalid(format!("reconstruction record: {e}")))?;
    let store = CheckpointStore::new(reconstructed_store_dir(run_dir, rec.std), usize::MAX, 0);
    store.save(
        rec.step,
        &refs,
        &[
            ("config.json", config.as_slice()),
            ("reconstruction.json", record_json.as_slice()),
        ],
        &base.state,
    )
}

/// What `reconstruction.json` records: the target, the fit, and every snapshot's coefficient.
fn record(rec: &Reconstruction) -> serde_json::Value {
    let sources: Vec<serde_json::Value> = rec
        .sources
        .iter()
        .zip(&rec.fit.coefficients)
        .map(|(s, c)| json!({"std": s.std, "gamma": s.gamma, "step": s.step, "file": s.file, "coefficient": c}))
        .collect();
    json!({
        "std": rec.std,
        "gamma": rec.gamma,
        "step": rec.step,
        "relative_residual": rec.fit.relative_residual,
        "coefficient_sum": rec.fit.coefficients.iter().sum::<f64>(),
        "sources": sources,
    })
}

fn read_bounded(path: &Path) -> Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .map_err(|e| TrainError::io(path, e))?
        .len();
    if len > MAX_CONFIG_BYTES {
        return Err(TrainError::corrupt(
            path,
            format!("{len} bytes, more than a model config can be"),
        ));
    }
    std::fs::read(path).map_err(|e| TrainError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_directory_of_a_reconstructed_checkpoint_is_found() {
        let run = Path::new("/r/run");
        let ck = reconstructed_store_dir(run, 0.08).join("step-000000010");
        assert_eq!(run_dir_of_reconstructed(&ck).as_deref(), Some(run));
        assert_eq!(
            run_dir_of_reconstructed(Path::new("/r/run/checkpoints/step-000000010")),
            None
        );
    }
}
