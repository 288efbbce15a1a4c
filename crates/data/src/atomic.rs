//! Files that appear whole or not at all: written to `.<name>.tmp-<pid>` beside the target,
//! synced, then renamed over it (manifests, shard records, skipped-sample lists).

use crate::error::{DataError, Result};
use std::path::Path;

/// Writes `bytes` to `path` through `path.tmp-<pid>`, synced, then renamed.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
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
