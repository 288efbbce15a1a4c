//! `flowscale ema-reconstruct` as a library call: for each requested std, reconstruct the
//! power-function EMA at a step that has a run checkpoint (its raw weights, classic EMAs and
//! config go into the written checkpoint) and write it beside the run
//! ([`super::reconstructed`]).

use super::reconstruct::{reconstruct, Reconstruction};
use super::reconstructed::write_checkpoint;
use super::snapshots;
use crate::checkpoint::CheckpointStore;
use crate::error::{Result, TrainError};
use crate::run::load_intact;
use crate::run_dir::RunDir;
use std::path::{Path, PathBuf};

/// One written reconstruction.
#[derive(Debug)]
pub struct Written {
    pub checkpoint: PathBuf,
    pub reconstruction: Reconstruction,
}

/// The step a reconstruction uses by default: the newest step with both a run checkpoint and a
/// post-hoc snapshot (what `flowscale ema-reconstruct` without `--at-step` reconstructs, and
/// where a sweep evaluates each run's post-hoc EMAs).
pub fn default_reconstruction_step(run_dir: &Path) -> Result<u64> {
    let all = snapshots::list(run_dir)?;
    let checkpoints = CheckpointStore::new(RunDir::new(run_dir).checkpoints(), 1, 0).list()?;
    default_step_of(run_dir, &all, &checkpoints)
}

fn default_step_of(
    run_dir: &Path,
    snaps: &[snapshots::Snapshot],
    checkpoints: &[(u64, PathBuf)],
) -> Result<u64> {
    checkpoints
        .iter()
        .rev()
        .map(|(s, _)| *s)
        .find(|s| snaps.iter().any(|snap| snap.step == *s))
        .ok_or_else(|| {
            TrainError::Invalid(format!(
                "{}: no step has both a checkpoint (kept: {}) and a post-hoc EMA snapshot; \
                 name one with --at-step",
                run_dir.display(),
                checkpoints
                    .iter()
                    .map(|(s, _)| s.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

/// Reconstructs every std of `stds` at step `at_step` (default: the newest step with both a
/// run checkpoint and a snapshot) from the snapshots of run directory `run_dir`.
pub fn reconstruct_run(run_dir: &Path, stds: &[f64], at_step: Option<u64>) -> Result<Vec<Written>> {
    if stds.is_empty() {
        return Err(TrainError::Invalid(
            "no std to reconstruct (--std S)".into(),
        ));
    }
    let all = snapshots::list(run_dir)?;
    let checkpoints = CheckpointStore::new(RunDir::new(run_dir).checkpoints(), 1, 0).list()?;
    let kept = || {
        checkpoints
            .iter()
            .map(|(s, _)| s.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let step = match at_step {
        Some(t) => t,
        None => default_step_of(run_dir, &all, &checkpoints)?,
    };
    let base_dir = checkpoints
        .iter()
        .find(|(s, _)| *s == step)
        .map(|(_, p)| p.clone())
        .ok_or_else(|| {
            TrainError::Invalid(format!(
                "{}: no checkpoint of step {step} (kept: {}); the reconstruction takes the raw \
                 weights and config from the checkpoint of its step",
                run_dir.display(),
                kept()
            ))
        })?;
    let base = load_intact(&base_dir)?;
    stds.iter()
        .map(|std| {
            let reconstruction = reconstruct(run_dir, &all, *std, step)?;
            let checkpoint = write_checkpoint(run_dir, &base, &reconstruction)?;
            Ok(Written {
                checkpoint,
                reconstruction,
            })
        })
        .collect()
}
