//! `[ema] posthoc = { stds = [...], snapshot_every = N }`: EDM2's power-function EMAs, one per
//! relative std, and how often their snapshots are written for post-hoc reconstruction
//! (`crate::posthoc`).

use super::{Validate, Validator};
use crate::posthoc::profile::{max_std, std_to_gamma};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PosthocEmaConfig {
    /// Relative stds of the tracked power-function EMAs (EDM2 tracks 0.05 and 0.10); each in
    /// `(0, sqrt(1/12))` so its exponent gamma is positive.
    pub stds: Vec<f64>,
    /// Write a snapshot of every tracked EMA every this many optimiser steps (and at the final
    /// step). Reconstruction is as fine-grained as the snapshots.
    pub snapshot_every: u64,
}

impl Validate for PosthocEmaConfig {
    fn validate(&self, v: &mut Validator) {
        if self.stds.is_empty() {
            v.fail("stds", "needs at least one std, e.g. [0.05, 0.10]");
        }
        for (i, s) in self.stds.iter().enumerate() {
            if std_to_gamma(*s).is_err() {
                v.fail(
                    &format!("stds[{i}]"),
                    format!(
                        "must lie in (0, {:.6}) so that its exponent gamma is positive, got {s}",
                        max_std()
                    ),
                );
            } else if self.stds[..i].contains(s) {
                v.fail(&format!("stds[{i}]"), format!("{s} is listed twice"));
            }
        }
        v.count_at_least("snapshot_every", self.snapshot_every, 1);
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{load_str, RunConfig};
    use crate::resume_compat::config_hash;
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

    fn load(overrides: &[&str]) -> Result<RunConfig, String> {
        let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        load_str(BASE, Path::new("t.toml"), &o).map_err(|e| e.to_string())
    }

    #[test]
    fn posthoc_section_is_read_validated_and_hashed() {
        let ok = load(&["ema.posthoc={ stds = [0.05, 0.1], snapshot_every = 4 }"]).unwrap();
        let p = ok.ema.posthoc.as_ref().unwrap();
        assert_eq!((p.stds.clone(), p.snapshot_every), (vec![0.05, 0.1], 4));
        // Part of the config hash: a resumed run cannot change the tracked EMAs.
        let other = load(&["ema.posthoc={ stds = [0.05, 0.2], snapshot_every = 4 }"]).unwrap();
        let off = load(&[]).unwrap();
        let hashes = [&ok, &other, &off].map(|c| config_hash(c).unwrap());
        assert!(hashes[0] != hashes[1] && hashes[0] != hashes[2]);

        let err =
            load(&["ema.posthoc={ stds = [0.3, 0.0, 0.1, 0.1], snapshot_every = 0 }"]).unwrap_err();
        for key in [
            "ema.posthoc.stds[0]",
            "ema.posthoc.stds[1]",
            "ema.posthoc.stds[3]",
            "ema.posthoc.snapshot_every",
        ] {
            assert!(err.contains(key), "{key} not named: {err}");
        }
        assert!(!err.contains("stds[2]"), "{err}");
        let err =
            load(&["ema.posthoc={ stds = [0.1], snapshot_every = 1, every = 2 }"]).unwrap_err();
        assert!(err.contains("every"), "{err}");
        let err = load(&["ema.posthoc={ stds = [], snapshot_every = 1 }"]).unwrap_err();
        assert!(err.contains("ema.posthoc.stds"), "{err}");
    }
}
