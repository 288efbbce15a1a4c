use crate::error::{Result, TrainError};
use crate::run_dir::io_error;
use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::Tensor;

pub const STATE_FILE: &str = "state.json";
const PREFIX: &str = "step-";
const TMP_PREFIX: &str = ".tmp-step-";

/// The file of group `name` in a checkpoint folder: `<name>.safetensors`.
pub fn group_file_name(name: &str) -> String {
    format!("{name}.safetensors")
}

/// Writes group `name` (file `<name>.safetensors`, tensors moved to the CPU) into the checkpoint
/// folder `tmp` being assembled, synced to disk; returns the file name for the checksums.
pub fn write_group(tmp: &Path, name: &str, tensors: &[(String, Tensor)]) -> Result<String> {
    let file = group_file_name(name);
    let path = tmp.join(&file);
    let cpu: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(k, t)| Ok((k.clone(), t.f_detach()?.f_to_device(tch::Device::Cpu)?)))
        .collect::<Result<_>>()?;
    Tensor::write_safetensors(&cpu, &path)
        .map_err(|e| TrainError::io(&path, std::io::Error::other(e.to_string())))?;
    sync(&path)?;
    Ok(file)
}

/// A folder of checkpoints with a retention policy.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    dir: PathBuf,
    keep_last: usize,
    keep_every: u64,
    /// A step retention never removes: the best validation loss's checkpoint, which the
    /// paper's selection rule (and `--best-val-loss`) needs after later checkpoints arrive.
    protected: Option<u64>,
}

/// What [`CheckpointStore::load`] returns.
#[derive(Debug)]
pub struct LoadedCheckpoint<S> {
    pub dir: PathBuf,
    pub step: u64,
    /// Group name -> tensors by name.
    pub groups: HashMap<String, HashMap<String, Tensor>>,
    pub state: S,
}

impl<S> LoadedCheckpoint<S> {
    /// The tensors of group `name` (`model`, `ema-<decay>`, `optimizer`).
    /// Its absence names the missing file.
    pub fn group(&self, name: &str) -> Result<&HashMap<String, Tensor>> {
        self.groups
            .get(name)
            .ok_or_else(|| TrainError::corrupt(&self.dir, format!("no {name}.safetensors")))
    }
}

impl CheckpointStore {
    /// `keep_last` newest checkpoints are kept, plus those whose step is a multiple of
    /// `keep_every` (0 = none).
    pub fn new(dir: impl Into<PathBuf>, keep_last: usize, keep_every: u64) -> Self {
        Self {
            dir: dir.into(),
            keep_last: keep_last.max(1),
            keep_every,
            protected: None,
        }
    }

    /// Keeps the checkpoint of `step` through retention (the best validation loss's).
    pub fn protect(&mut self, step: Option<u64>) {
        self.protected = step;
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The folder of step `step`.
    pub fn path_of(&self, step: u64) -> PathBuf {
        self.dir.join(format!("{PREFIX}{step:09}"))
    }

    /// Complete checkpoints, oldest first.
    pub fn list(&self) -> Result<Vec<(u64, PathBuf)>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(io_error(&self.dir, e)),
        };
        let mut out = vec![];
        for entry in entries {
            let entry = entry.map_err(|e| io_error(&self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(step) = name
                .strip_prefix(PREFIX)
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            if entry.path().join(STATE_FILE).is_file() {
                out.push((step, entry.path()));
            }
        }
        out.sort();
        Ok(out)
    }

    /// The newest complete checkpoint.
    pub fn latest(&self) -> Result<Option<(u64, PathBuf)>> {
        Ok(self.list()?.pop())
    }

    /// Writes checkpoint `step` with `groups` (name, tensors), extra `files` (name, bytes) and
    /// `state`, then applies retention.
    pub fn save<S: Serialize>(
        &self,
        step: u64,
        groups: &[(&str, Vec<(String, Tensor)>)],
        files: &[(&str, &[u8])],
        state: &S,
    ) -> Result<PathBuf> {
        let tmp = self.begin(step)?;
        let mut written = Vec::new();
        for (name, tensors) in groups {
            written.push(write_group(&tmp, name, tensors)?);
        }
        self.commit(step, written, files, state)
    }

    /// The folder checkpoint `step` is assembled in before [`CheckpointStore::commit`] renames
    /// it into place.
    pub fn temp_path(&self, step: u64) -> PathBuf {
        self.dir.join(format!("{TMP_PREFIX}{step:09}"))
    }

    /// Starts checkpoint `step`: removes the temporaries of interrupted saves and creates an
    /// empty [`CheckpointStore::temp_path`]. Several writers (the ranks of a sharded run) may
    /// then add groups with [`write_group`] before one of them commits.
    pub fn begin(&self, step: u64) -> Result<PathBuf> {
        std::fs::create_dir_all(&self.dir).map_err(|e| io_error(&self.dir, e))?;
        self.remove_temporaries()?;
        let tmp = self.temp_path(step);
        std::fs::create_dir_all(&tmp).map_err(|e| io_error(&tmp, e))?;
        Ok(tmp)
    }

    /// Completes checkpoint `step` begun with [`CheckpointStore::begin`]: writes `files`, the
    /// checksums of those and of the `written` groups (file names), then `state`; renames the
    /// folder into place and applies retention.
    pub fn commit<S: Serialize>(
        &self,
        step: u64,
        mut written: Vec<String>,
        files: &[(&str, &[u8])],
        state: &S,
    ) -> Result<PathBuf> {
        let tmp = self.temp_path(step);
        for (name, bytes) in files {
            written.push((*name).to_owned());
            let path = tmp.join(name);
            std::fs::write(&path, bytes).map_err(|e| io_error(&path, e))?;
            sync(&path)?;
        }
        super::checksums::write(&tmp, &written)?;
        let json = serde_json::to_vec_pretty(state)
            .map_err(|e| TrainError::Invalid(format!("checkpoint state: {e}")))?;
        let state_path = tmp.join(STATE_FILE);
        std::fs::write(&state_path, json).map_err(|e| io_error(&state_path, e))?;
        sync(&state_path)?;
        let final_path = self.path_of(step);
        if final_path.exists() {
            std::fs::remove_dir_all(&final_path).map_err(|e| io_error(&final_path, e))?;
        }
        flowscale_core::atomic::rename_into_place(&tmp, &final_path)?;
        self.apply_retention()?;
        Ok(final_path)
    }

    /// Reads group `name` of the checkpoint folder `dir` alone (checksums are verified by
    /// [`CheckpointStore::load`], which every reader of a checkpoint goes through first).
    pub fn load_group(dir: &Path, name: &str) -> Result<HashMap<String, Tensor>> {
        let file = group_file_name(name);
        let path = dir.join(&file);
        if !path.is_file() {
            return Err(TrainError::corrupt(dir, format!("no {file}")));
        }
        let tensors = Tensor::read_safetensors(&path).map_err(|e| TrainError::corrupt(&path, e))?;
        Ok(tensors.into_iter().collect())
    }

    /// Reads a checkpoint folder: every `*.safetensors` as a group, and the state.
    pub fn load<S: DeserializeOwned>(dir: &Path) -> Result<LoadedCheckpoint<S>> {
        super::checksums::verify(dir)?;
        let state_path = dir.join(STATE_FILE);
        let text = std::fs::read_to_string(&state_path).map_err(|e| io_error(&state_path, e))?;
        let state: S =
            serde_json::from_str(&text).map_err(|e| TrainError::corrupt(&state_path, e))?;
        let mut groups = HashMap::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
            let path = entry.map_err(|e| io_error(dir, e))?.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".safetensors"))
            else {
                continue;
            };
            // A sharded run's per-rank optimiser files: each rank reads its own
            // (`load_group`), no reader needs them all.
            if name.starts_with(crate::distributed::zero::SHARD_GROUP_PREFIX) {
                continue;
            }
            groups.insert(name.to_owned(), Self::load_group(dir, name)?);
        }
        let step = dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                TrainError::Invalid(format!(
                    "{}: not a checkpoint folder (step-NNNNNNNNN)",
                    dir.display()
                ))
            })?;
        Ok(LoadedCheckpoint {
            dir: dir.to_path_buf(),
            step,
            groups,
            state,
        })
    }

    fn remove_temporaries(&self) -> Result<()> {
        for entry in std::fs::read_dir(&self.dir).map_err(|e| io_error(&self.dir, e))? {
            let entry = entry.map_err(|e| io_error(&self.dir, e))?;
            if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                std::fs::remove_dir_all(entry.path()).map_err(|e| io_error(&entry.path(), e))?;
            }
        }
        Ok(())
    }

    fn apply_retention(&self) -> Result<()> {
        let all = self.list()?;
        let cut = all.len().saturating_sub(self.keep_last);
        for (step, path) in &all[..cut] {
            let kept = (self.keep_every > 0 && step % self.keep_every == 0)
                || self.protected == Some(*step);
            if !kept {
                std::fs::remove_dir_all(path).map_err(|e| io_error(path, e))?;
            }
        }
        Ok(())
    }
}

fn sync(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_error(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(v: f32) -> Vec<(&'static str, Vec<(String, Tensor)>)> {
        vec![(
            "model",
            vec![("w".to_string(), Tensor::from_slice(&[v, v]))],
        )]
    }

    #[test]
    fn retention_keeps_the_protected_step() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = CheckpointStore::new(tmp.path(), 1, 0);
        for step in 1..=5 {
            if step == 3 {
                store.protect(Some(2));
            }
            store.save(step, &groups(step as f32), &[], &step).unwrap();
        }
        let steps: Vec<u64> = store.list().unwrap().iter().map(|(s, _)| *s).collect();
        assert_eq!(steps, vec![2, 5]);
    }

    #[test]
    fn retention_keeps_last_n_and_every_k() {
        let tmp = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(tmp.path(), 2, 4);
        for step in 1..=9 {
            store.save(step, &groups(step as f32), &[], &step).unwrap();
        }
        let steps: Vec<u64> = store.list().unwrap().into_iter().map(|(s, _)| s).collect();
        assert_eq!(steps, vec![4, 8, 9]);
        let loaded: LoadedCheckpoint<u64> = CheckpointStore::load(&store.path_of(8)).unwrap();
        assert_eq!(loaded.state, 8);
        assert!(loaded.groups["model"]["w"].equal(&Tensor::from_slice(&[8.0f32, 8.0])));
    }

    #[test]
    fn partial_writes_are_ignored_and_cleaned() {
        let tmp = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(tmp.path(), 3, 0);
        store
            .save(10, &groups(1.0), &[("config.json", b"{}")], &10u64)
            .unwrap();
        // A crash mid-write: a temporary folder with a truncated file, and a final-named folder
        // without state.json (as a copy tool might leave).
        let partial = tmp.path().join(".tmp-step-000000020");
        std::fs::create_dir_all(&partial).unwrap();
        std::fs::write(partial.join("model.safetensors"), b"\x10\x00").unwrap();
        std::fs::create_dir_all(store.path_of(30)).unwrap();
        let (step, path) = store.latest().unwrap().unwrap();
        assert_eq!(step, 10);
        let loaded: LoadedCheckpoint<u64> = CheckpointStore::load(&path).unwrap();
        assert_eq!(loaded.state, 10);
        store.save(11, &groups(2.0), &[], &11u64).unwrap();
        assert!(!partial.exists());
        // A corrupt file in a complete checkpoint is an error naming it.
        std::fs::write(store.path_of(11).join("model.safetensors"), b"junk").unwrap();
        let err = CheckpointStore::load::<u64>(&store.path_of(11))
            .unwrap_err()
            .to_string();
        assert!(err.contains("model.safetensors"), "{err}");
    }
}
