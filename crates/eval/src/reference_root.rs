//! The reference side of FID prepared once and cached: the PSD square root `R = S^(1/2)` of the
//! reference covariance, next to the cached statistics (`<key>.safetensors`) as
//! `<key>.root.safetensors` (tensor `root` `[d, d]`, float64) with `<key>.root.json`
//! ([`RootProvenance`]: the hash of the root file and of the statistics it is the root of).
//!
//! The statistics file is left as it was, so results cite the same reference stats hash, and an
//! entry written before roots were cached loads as before and gets its root computed and stored
//! on first use. A root file whose hash, statistics hash, shape or values do not match is an
//! error naming the file (deleting the two root files makes the next evaluation recompute it);
//! it is never silently replaced.

use crate::error::{EvalError, Result};
use crate::frechet::PreparedReference;
use crate::hash::{read_verified_sidecar, sha256_file};
use crate::reference::ReferenceStats;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// What a cached root is the root of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootProvenance {
    /// SHA-256 of the statistics file whose covariance this is the root of.
    pub stats_sha256: String,
    /// Feature dimension `d` (the root is `[d, d]`).
    pub dim: i64,
    /// How the root was computed.
    pub method: String,
    /// SHA-256 of the root file.
    pub root_sha256: String,
}

/// The method recorded in [`RootProvenance`].
pub const ROOT_METHOD: &str = "float64 linalg_eigh, eigenvalues clamped at 0";

/// `<key>.root.safetensors` for the statistics file `<key>.safetensors`.
pub fn root_path(stats_path: &Path) -> PathBuf {
    stats_path.with_extension("root.safetensors")
}

/// The prepared reference of `reference`, reading its cached root or computing and caching it.
pub fn prepared_reference(reference: &ReferenceStats) -> Result<PreparedReference> {
    let path = root_path(&reference.path);
    if path.with_extension("json").is_file() {
        let root = load_root(&path, reference)?;
        return PreparedReference::with_root(&reference.stats, root);
    }
    let prepared = PreparedReference::new(&reference.stats)?;
    flowscale_core::atomic::write_atomic_with(&path, |tmp| {
        Tensor::write_safetensors(&[("root", prepared.root())], tmp)
    })
    .map_err(flowscale_core::atomic::AtomicWithError::into_error::<EvalError>)?;
    let provenance = RootProvenance {
        stats_sha256: reference.provenance.stats_sha256.clone(),
        dim: reference.stats.dim(),
        method: ROOT_METHOD.into(),
        root_sha256: sha256_file(&path)?,
    };
    let text = serde_json::to_string_pretty(&provenance).expect("root provenance serialises");
    flowscale_core::write_atomic(&path.with_extension("json"), (text + "\n").as_bytes())?;
    Ok(prepared)
}

fn load_root(path: &Path, reference: &ReferenceStats) -> Result<Tensor> {
    let provenance: RootProvenance =
        read_verified_sidecar(path, "root_sha256", |p: &RootProvenance| &p.root_sha256)?;
    let stats_sha256 = &reference.provenance.stats_sha256;
    if &provenance.stats_sha256 != stats_sha256 {
        return Err(EvalError::corrupt(
            path,
            format!(
                "root of statistics {} but {} has hash {stats_sha256}; delete {} and its .json \
                 to recompute it",
                provenance.stats_sha256,
                reference.path.display(),
                path.display()
            ),
        ));
    }
    let d = reference.stats.dim();
    let tensors = Tensor::read_safetensors(path).map_err(|e| EvalError::corrupt(path, e))?;
    let root = tensors
        .into_iter()
        .find(|(n, _)| n == "root")
        .map(|(_, t)| t)
        .ok_or_else(|| EvalError::corrupt(path, "no tensor `root`"))?;
    if root.size() != [d, d] || root.kind() != Kind::Double {
        return Err(EvalError::corrupt(
            path,
            format!(
                "root is {:?} {:?}, expected float64 [{d}, {d}]",
                root.kind(),
                root.size()
            ),
        ));
    }
    check_is_root(&root, &reference.stats.cov).map_err(|why| EvalError::corrupt(path, why))?;
    Ok(root)
}

/// Checks `R R = S` on a few fixed probe vectors (`O(d^2)`, against the `O(d^3)` of
/// recomputing): a root of other statistics fails it by far more than rounding.
fn check_is_root(root: &Tensor, cov: &Tensor) -> std::result::Result<(), String> {
    let run = || -> Result<(f64, f64)> {
        let cov = cov.f_to_kind(Kind::Double)?;
        let d = cov.size()[0];
        // Deterministic probes: a ramp, an alternating vector and a constant one.
        let i = Tensor::f_arange(d, (Kind::Double, Device::Cpu))?;
        let probes = Tensor::f_stack(
            &[
                i.f_div_scalar(d as f64)?,
                i.f_remainder(2.0)?.f_mul_scalar(2.0)?.f_sub_scalar(1.0)?,
                i.f_ones_like()?,
            ],
            1,
        )?;
        let rr = root.f_matmul(&root.f_matmul(&probes)?)?;
        let s = cov.f_matmul(&probes)?;
        let err = rr.f_sub(&s)?.f_abs()?.f_max()?.f_double_value(&[])?;
        // |S v| <= tr(S) |v|_inf for PSD S: the scale that rounding errors are relative to.
        let scale = cov
            .f_trace()?
            .f_double_value(&[])?
            .abs()
            .max(f64::MIN_POSITIVE);
        Ok((err, scale))
    };
    let (err, scale) = run().map_err(|e| e.to_string())?;
    if err.is_nan() || err > 1e-8 * scale {
        return Err(format!(
            "root * root differs from the reference covariance by {err:.3e} (trace {scale:.3e}); \
             delete this file and its .json to recompute it"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::StatsProvenance;
    use crate::stats::FeatureStats;

    fn reference(dir: &Path, seed: i64, stats_sha256: &str) -> ReferenceStats {
        // Deterministic features (the global torch seed is shared with parallel tests).
        let x = Tensor::arange(60, (Kind::Double, Device::Cpu))
            .f_mul_scalar(0.7 * seed as f64)
            .unwrap()
            .sin()
            .reshape([6, 10]);
        ReferenceStats {
            stats: FeatureStats::from_features(&x).unwrap(),
            provenance: StatsProvenance {
                source: "test".into(),
                n_images: 6,
                images_sha256: String::new(),
                feature_network: String::new(),
                feature_weights_sha256: String::new(),
                resize_mode: String::new(),
                stats_sha256: stats_sha256.into(),
            },
            path: dir.join("0123.safetensors"),
        }
    }

    fn root_of(r: &ReferenceStats) -> Vec<f64> {
        let p = prepared_reference(r).unwrap();
        Vec::<f64>::try_from(p.root().reshape([-1])).unwrap()
    }

    #[test]
    fn root_is_cached_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let r = reference(dir.path(), 1, "aa");
        let first = root_of(&r);
        let path = dir.path().join("0123.root.safetensors");
        let js = dir.path().join("0123.root.json");
        assert!(path.is_file() && js.is_file());
        let prov: RootProvenance =
            serde_json::from_str(&std::fs::read_to_string(&js).unwrap()).unwrap();
        assert_eq!((prov.stats_sha256.as_str(), prov.dim), ("aa", 10));
        assert_eq!(prov.root_sha256, sha256_file(&path).unwrap());
        // Read back (not recomputed): the same bits.
        assert_eq!(root_of(&r), first);
    }

    #[test]
    fn damaged_or_foreign_roots_are_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        let r = reference(dir.path(), 1, "aa");
        root_of(&r);
        let path = dir.path().join("0123.root.safetensors");
        let path_s = path.display().to_string();

        // Statistics with another hash: the cached root is not theirs.
        let other = reference(dir.path(), 1, "bb");
        let e = prepared_reference(&other).unwrap_err().to_string();
        assert!(
            e.contains(&path_s) && e.contains("root of statistics aa"),
            "{e}"
        );

        // A root of other statistics, with consistent hashes: the probe check refuses it.
        let foreign = reference(dir.path(), 2, "aa");
        let e = prepared_reference(&foreign).unwrap_err().to_string();
        assert!(
            e.contains(&path_s) && e.contains("differs from the reference"),
            "{e}"
        );

        // A damaged file: its hash differs from the recorded one.
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let e = prepared_reference(&r).unwrap_err().to_string();
        assert!(e.contains(&path_s) && e.contains("root_sha256"), "{e}");
    }
}
