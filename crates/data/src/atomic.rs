//! Files that appear whole or not at all: written to `.<name>.tmp-<pid>` beside the target,
//! synced, then renamed over it (manifests, shard records, skipped-sample lists).

use crate::error::{DataError, Result};
use std::path::{Path, PathBuf};

/// What every temporary name of `file_name` starts with (the pid follows), so a restart can
/// find what a killed writer left.
pub(crate) fn tmp_prefix(file_name: &str) -> String {
    format!(".{file_name}.tmp-")
}

/// This process's temporary name for `path`: `.<name>.tmp-<pid>` beside it.
pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!("{}{}", tmp_prefix(&name), std::process::id()))
}

/// Writes `bytes` to `path` through [`tmp_path`], synced, then renamed.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(DataError::io(&tmp, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| DataError::io(path, e))
}
