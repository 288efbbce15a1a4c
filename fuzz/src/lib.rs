//! Helpers shared by the fuzz targets. Most readers take a path (they check the file's length,
//! memory-map it or pick gzip by the suffix), so the input is written to a scratch file and the
//! real path-taking function is called: the target exercises what a user's file goes through.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A directory for this process's scratch files: under `$FUZZ_SCRATCH` (scripts/fuzz points it
/// at a folder in `/dev/shm`, so a write per input costs little, and removes it afterwards), else
/// under the system's temporary folder. Statics are never dropped, so the folder outlives the
/// process; a crashing input must leave its file behind anyway, to be looked at.
pub fn scratch_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::env::var_os("FUZZ_SCRATCH")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!("flowscale-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        dir
    })
}

/// Writes `bytes` to `name` in the scratch directory (replacing the last input's file).
pub fn scratch_file(name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch_dir().join(name);
    std::fs::write(&path, bytes).expect("scratch file written");
    path
}

/// With `FUZZ_SHOW=1` in the environment, prints what a reader returned for the input: for
/// checking that the seeds are accepted and reading what a reader says about an input.
pub fn show<T, E: std::fmt::Display>(what: &str, result: &Result<T, E>) {
    static ON: OnceLock<bool> = OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("FUZZ_SHOW").is_some()) {
        match result {
            Ok(_) => eprintln!("{what}: ok"),
            Err(e) => eprintln!("{what}: {e}"),
        }
    }
}
