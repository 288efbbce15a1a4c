//! Run IDs: a function of the resolved config, so the same config is always the same run (and a
//! sweep rerun finds its finished runs) whatever the file it came from.

use crate::error::{Result, StudyError};
use flowscale_train::config::{to_toml_string, RunConfig};

/// `r` + 12 hex digits of FNV-1a 64 over the resolved config without `run.name` and
/// `run.out_dir` (where a run lives is not what it is).
pub fn run_id(config: &RunConfig) -> Result<String> {
    let mut c = config.clone();
    c.run.name = String::new();
    c.run.out_dir = String::new();
    let text = to_toml_string(&c).map_err(|e| StudyError::Sweep {
        path: "run config".into(),
        message: e.to_string(),
    })?;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    Ok(format!("r{:012x}", h >> 16))
}
